"""2a. parse_model gets a ``backbone = False`` flag before its layer loop."""

from bbpatch.engine.edits.base import LAYER_LOOP, TASKS, InsertStatement, function_body

EDIT = InsertStatement(
    name="backbone_flag",
    file=TASKS,
    summary="backbone = False before parse_model's layer loop",
    scope=function_body("parse_model"),
    where="parse_model",
    expected="'for i, (f, n, m, args) in enumerate(...)' layer loop",
    template="backbone_flag",
    anchor=LAYER_LOOP,
    position="before",
)
