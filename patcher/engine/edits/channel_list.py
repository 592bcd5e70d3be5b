"""6. ``ch`` takes a backbone's channel list, padded with a leading 0 to 5 slots."""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TASKS, WrapStatement, call_statement, layer_loop

EDIT = WrapStatement(
    name="channel_list",
    file=TASKS,
    summary="ch.extend(c2) padded to 5 for a backbone, ch.append(c2) otherwise",
    scope=layer_loop,
    where="parse_model",
    expected="'ch.append(c2)' statement",
    template="channel_list",
    earlier_tests=("isinstance(c2, list)",),  # before 0.3.0: CBLinear's list c2 was taken for a backbone
    anchor=call_statement("ch", "append", [m.Arg(m.Name("c2"))]),
)
