"""9. get_flops profiles a backbone model at full size, on releases whose get_flops scales a stride-sized probe.

Up to 8.4.100 get_flops profiles a ``stride x stride`` image and scales the count up; a backbone's FLOPs
do not scale that way (and some backbones fail at that size, which made it print 0). 8.4.112+ profiles
stride-aware on a full-size image and needs nothing: there the block lacks the stride-sized image.
"""

import bbpatch.matchers as m
from bbpatch.edits.base import TORCH_UTILS, InsertStatement, assign_to, blocks_in

PROBE_STRIDE = assign_to(
    "stride", m.IfExp(body=m.Call(func=m.Name("max"), args=[m.Arg(m.Call(func=m.Name("int"))), m.ZeroOrMore()]))
)
STRIDE_SIZED_IMAGE = assign_to(
    "im",
    m.Call(
        args=[
            m.Arg(m.Tuple(elements=[m.ZeroOrMore(), m.Element(m.Name("stride")), m.Element(m.Name("stride"))])),
            m.ZeroOrMore(),
        ]
    ),
)


def stride_sized_probes(module):
    """Blocks of get_flops that build a ``stride x stride`` probe image."""
    for block in blocks_in("get_flops")(module):
        if any(m.matches(statement, STRIDE_SIZED_IMAGE) for statement in block.node.body):
            yield block


EDIT = InsertStatement(
    name="flops_full_size",
    file=TORCH_UTILS,
    summary="get_flops profiles at full image size when the model holds a backbone",
    scope=stride_sized_probes,
    where="get_flops",
    expected="'stride = max(int(model.stride.max()), 32) ...' probe size",
    template="flops_full_size",
    anchor=PROBE_STRIDE,
    optional=True,  # 8.4.112+ profiles stride-aware on a full-size image and handles backbone models already
)
