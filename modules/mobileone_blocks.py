"""MobileOne blocks for layer-by-layer YAMLs (seed 004), built on timm's reparameterizable ``MobileOneBlock``.

timm is imported when a block is built, not at import (see ``timm_backbones``: stock start-up stays timm-free).
"""

from torch import nn

from ._rebuild import RebuildOnLoad


def mobileone_unit(c1, c2, branches, stride):
    """One MobileOne block (paper, Fig. 3): a depthwise 3x3 then a pointwise 1x1 stage, each the sum of
    ``branches`` conv-BN branches, a 1x1 scale branch (depthwise stage) and a BN identity where shapes allow.
    """
    from timm.models.byobnet import MobileOneBlock  # deferred: see the module docstring

    return nn.Sequential(
        MobileOneBlock(c1, c1, kernel_size=3, stride=stride, group_size=1, num_conv_branches=branches),
        MobileOneBlock(c1, c2, kernel_size=1, num_conv_branches=branches),
    )


class MobileOne(RebuildOnLoad, nn.Module):
    """``n`` MobileOne blocks with ``k`` over-parameterized branches. YAML: ``[-1, n, MobileOne, [c2, k, stride]]``.

    parse_model passes the repeat count (``bbpatch_repeats``) and builds the layer once. Only the first block
    changes channels and strides; the others map c2 to c2. ``model.fuse()`` reparameterizes every block into
    a single conv per stage; checkpoints store the recipe (see ``_rebuild``), not timm's classes.
    """

    bbpatch_role = "block"
    bbpatch_repeats = True

    def __init__(self, c1, c2, n=1, k=1, stride=1):
        super().__init__()
        self.config = dict(c1=c1, c2=c2, n=n, k=k, stride=stride)
        units = [mobileone_unit(c1 if i == 0 else c2, c2, k, stride if i == 0 else 1) for i in range(n)]
        self.m = nn.Sequential(*units)

    def forward(self, x):
        return self.m(x)
