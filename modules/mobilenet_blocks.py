"""MobileNetV3 layers for layer-by-layer YAMLs (seed 003): ``conv_bn_hswish`` and ``MobileNet_Block``.

Both are built from ultralytics' ``Conv`` (conv + BatchNorm + activation), so ``model.fuse()`` folds their
BatchNorms like any stock layer, and checkpoints name only torch, ultralytics and bbpatch classes.
"""

import math

from torch import nn
from ultralytics.nn.modules import Conv


def make_divisible(x, divisor=8):
    return math.ceil(x / divisor) * divisor


def activation(use_hs):
    return nn.Hardswish() if use_hs else nn.ReLU()


class conv_bn_hswish(Conv):  # noqa: N801  (the name users type, from seed 003)
    """3x3 conv + BatchNorm + h-swish, MobileNetV3's stem. YAML args: ``[c2, stride]``."""

    bbpatch_role = "block"

    def __init__(self, c1, c2, stride=1):
        super().__init__(c1, c2, k=3, s=stride, act=nn.Hardswish())


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-and-excite: channels squeezed 4x, ReLU, then a hard-sigmoid gate."""

    def __init__(self, channels):
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MobileNet_Block(nn.Module):  # noqa: N801
    """MobileNetV3 inverted residual: 1x1 expand, kxk depthwise, squeeze-excite, linear 1x1 project.

    YAML args: ``[c2, hidden, k, stride, use_se, use_hs]`` as in the MobileNetV3 paper's table (exp size,
    kernel, stride, SE, NL), with the residual when the stride is 1 and channels are unchanged. The SE gate
    follows the depthwise activation, as in the paper (seed 003 put it between BatchNorm and activation).

    ``hidden``, the expansion width, scales consistently with the model width when written as a float: an
    expansion ratio of the block's input channels, ``hidden = make_divisible(round(c1 * ratio), 8)``. parse_model
    scales ``c1`` and ``c2`` by the width multiple, so the expansion follows, and a block with ratio 1.0 has
    no expand conv at every scale. An int is an absolute channel count used as written (the YOLOv5
    convention of the seed YAMLs): right at width 1.0 only. bbpatch's YAMLs write ratios.
    """

    bbpatch_role = "block"

    def __init__(self, c1, c2, hidden, k=3, stride=1, use_se=False, use_hs=False):
        super().__init__()
        hidden = make_divisible(round(c1 * hidden)) if isinstance(hidden, float) else hidden
        expand = [Conv(c1, hidden, 1, act=activation(use_hs))] if hidden != c1 else []
        depthwise = [Conv(hidden, hidden, k, stride, g=hidden, act=activation(use_hs))]
        excite = [SqueezeExcite(hidden)] if use_se else []
        project = [Conv(hidden, c2, 1, act=False)]
        self.conv = nn.Sequential(*expand, *depthwise, *excite, *project)
        self.residual = stride == 1 and c1 == c2

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y
