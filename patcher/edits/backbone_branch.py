"""3. parse_model builds a whole backbone (a class marked ``bbpatch_role = "backbone"``) and takes its channel list."""

from bbpatch.edits.base import TASKS, layer_loop
from bbpatch.edits.branches import InsertBranch

EDIT = InsertBranch(
    name="backbone_branch",
    file=TASKS,
    summary="elif branch that builds a backbone and takes its channel list",
    scope=layer_loop,
    where="parse_model",
    expected="final 'else: c2 = ch[f]' branch",
    template="backbone_branch",
)
