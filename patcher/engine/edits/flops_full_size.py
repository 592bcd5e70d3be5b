"""9. get_flops profiles a model that holds a backbone at full image size.

get_flops extrapolates from small stride-sized probes. Up to 8.4.100 it profiles one ``stride x stride``
image and scales by area; from 8.4.112 thop fits stride-aligned proxies. Neither is exact for backbones
whose cost is not linear in the image area (squeeze-excitation, attention): on 8.4.190 MobileNetV3 models
printed up to 6% too many GFLOPs, and on older releases backbones that fail on tiny inputs printed 0.
Setting ``stride`` to the image size makes every form profile the full image once.
"""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TORCH_UTILS, InsertStatement, assign_to, blocks_in

MAX_STRIDE = m.IfExp(body=m.Call(func=m.Name("max"), args=[m.Arg(m.Call(func=m.Name("int"))), m.ZeroOrMore()]))
# 8.4.113 .. 8.4.163 skip the probe for attention models: ``stride = None if attn else max(...) if ... else 32``
PROBE_STRIDE = assign_to("stride", MAX_STRIDE | m.IfExp(orelse=MAX_STRIDE))

EDIT = InsertStatement(
    name="flops_full_size",
    file=TORCH_UTILS,
    summary="get_flops profiles at full image size when the model holds a backbone",
    scope=blocks_in("get_flops"),
    where="get_flops",
    expected="'stride = max(int(model.stride.max()), 32) ...' probe size",
    template="flops_full_size",
    anchor=PROBE_STRIDE,
    optional=True,  # a get_flops without a stride probe profiles at full size already
)
