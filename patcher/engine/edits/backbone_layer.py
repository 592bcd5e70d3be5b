"""5a. The backbone instance built in its branch becomes the layer (``m_ = m``), marked ``backbone``."""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TASKS, WrapStatement, assign_to, layer_loop

EDIT = WrapStatement(
    name="backbone_layer",
    file=TASKS,
    summary="m_ = m for a backbone, the stock layer build otherwise",
    scope=layer_loop,
    where="parse_model",
    expected="'m_ = ...' layer build statement",
    template="backbone_layer",
    earlier_tests=("isinstance(c2, list)",),  # before 0.3.0: CBLinear's list c2 was taken for a backbone
    anchor=assign_to("m_", m.IfExp() | m.Call()),
)
