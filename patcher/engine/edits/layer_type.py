"""5b. A backbone layer keeps its YAML name as its type instead of ``str(m)`` of an instance."""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TASKS, WrapStatement, assign_to, layer_loop

EDIT = WrapStatement(
    name="layer_type",
    file=TASKS,
    summary="t = str(m)... only for layers that are not backbones",
    scope=layer_loop,
    where="parse_model",
    expected="'t = str(m)[8:-2]...' module type statement",
    template="layer_type",
    earlier_tests=("not isinstance(c2, list)",),  # before 0.3.0: CBLinear's list c2 was taken for a backbone
    anchor=assign_to("t", m.Call()),
)
