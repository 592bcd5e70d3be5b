"""3. parse_model builds a whole backbone (a class marked ``bbpatch_role = "backbone"``) and takes its channel list.

The inserted branch passes parse_model's model dict ``d`` on, so that the YAML's ``backbone_scales`` can pick the
backbone variant by scale letter: the edit attaches only where that first parameter is named ``d``.
"""

from bbpatch.engine.edits.base import TASKS, layer_loop
from bbpatch.engine.edits.branches import InsertBranch


def layer_loop_of_d(module):
    for block in layer_loop(module):
        params = block.fn.params.params
        if params and params[0].name.value == "d":
            yield block


EDIT = InsertBranch(
    name="backbone_branch",
    file=TASKS,
    summary="elif branch that builds a backbone (by scale letter) and takes its channel list",
    scope=layer_loop_of_d,
    where="parse_model",
    expected="final 'else: c2 = ch[f]' branch in a parse_model(d, ...)",
    template="backbone_branch",
)
