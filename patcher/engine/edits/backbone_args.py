"""1b. A backbone's YAML strings reach it as written: ``ast.literal_eval`` (``eval`` before 8.1) raises a
SyntaxError on checkpoint paths such as ``./w/s0.pth``, ``/data/w.pth`` or ``~/w.pth`` before the backbone sees them."""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TASKS, WrapStatement, layer_loop

STRING_EVALUATION = m.For(
    target=m.Tuple([m.Element(m.Name("j")), m.Element(m.Name("a"))]),
    iter=m.Call(func=m.Name("enumerate"), args=[m.Arg(m.Name("args"))]),
)

EDIT = WrapStatement(
    name="backbone_args",
    file=TASKS,
    summary="a bbpatch backbone's string args (checkpoint paths) are not evaluated as Python",
    scope=layer_loop,
    where="parse_model",
    expected="'for j, a in enumerate(args):' string evaluation loop",
    template="backbone_args",
    anchor=STRING_EVALUATION,
)
