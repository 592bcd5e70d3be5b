"""2b. ``t = m`` first in the layer loop: a backbone layer keeps its YAML name as its type."""

from bbpatch.engine.edits.base import TASKS, InsertStatement, layer_loop

EDIT = InsertStatement(
    name="yaml_name",
    file=TASKS,
    summary="t = m first in parse_model's layer loop",
    scope=layer_loop,
    where="parse_model",
    expected="'for i, (f, n, m, args) in enumerate(...)' layer loop",
    template="yaml_name",
    position="first",
)
