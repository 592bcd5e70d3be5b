"""4. parse_model builds a block (``bbpatch_role = "block"``) like its own Conv: c1 injected, c2 scaled, repeats."""

from bbpatch.engine.edits.base import TASKS, layer_loop
from bbpatch.engine.edits.branches import InsertBranch

EDIT = InsertBranch(
    name="block_branch",
    file=TASKS,
    summary="elif branch for block modules: c1 = ch[f], c2 scaled by width, repeat count",
    scope=layer_loop,
    where="parse_model",
    expected="final 'else: c2 = ch[f]' branch",
    template="block_branch",
)
