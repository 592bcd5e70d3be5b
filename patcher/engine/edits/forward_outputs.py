"""7. Every forward loop spreads a backbone's feature list over layer slots 0..4 of ``y``."""

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine.cst import functions
from bbpatch.engine.edits.base import TASKS, WrapStatement, blocks_of, call_statement

FORWARD_LOOP_FUNCTIONS = {"_forward_once", "_predict_once", "predict"}

SAVE_OUTPUT = call_statement(
    "y",
    "append",
    [
        m.Arg(
            m.IfExp(
                body=m.Name("x"),
                test=m.Comparison(left=m.Attribute(value=m.Name("m"), attr=m.Name("i"))),
                orelse=m.Name("None"),
            )
        )
    ],
)


def forward_loops(module: cst.Module):
    """Bodies of the ``for m in self.model`` loops of every predict-like method."""
    for path, fn in functions(module):
        if path[-1] in FORWARD_LOOP_FUNCTIONS:
            for block in blocks_of(fn):
                if isinstance(block.path[-1], cst.For):
                    yield block


EDIT = WrapStatement(
    name="forward_outputs",
    file=TASKS,
    summary="forward loops append a backbone's 5 slots to y and go on with its last map",
    scope=forward_loops,
    where="BaseModel._predict_once",
    expected="'y.append(x if m.i in self.save else None)' in a 'for m in self.model' loop",
    template="forward_outputs",
    anchor=SAVE_OUTPUT,
    earlier_tests=('getattr(m, "backbone", False)',),  # bbpatch 0.1.0
)
