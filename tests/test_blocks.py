"""Block modules for layer-by-layer YAMLs, and reparameterization of everything MobileOne."""

import pytest
import torch
from torch import nn
from ultralytics.nn.modules import Conv

from bbpatch.modules import MobileNet_Block, MobileOne, MobileOneS0, bbpatch_reparameterize, conv_bn_hswish
from bbpatch.modules.mobilenet_blocks import SqueezeExcite


def randomize_batchnorms(module):
    """Fresh BatchNorms are identities; trained-like statistics make the fusion checks meaningful."""
    generator = torch.Generator().manual_seed(0)
    uniform = lambda shape, low, high: torch.rand(shape, generator=generator) * (high - low) + low  # noqa: E731
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = uniform(m.weight.shape, 0.2, 0.6)
            m.bias.data = uniform(m.bias.shape, -0.1, 0.1)
            m.running_mean.data = uniform(m.running_mean.shape, -0.1, 0.1)
            m.running_var.data = uniform(m.running_var.shape, 0.5, 1.5)
    return module.eval()


def test_block_declarations():
    for block in (conv_bn_hswish, MobileNet_Block, MobileOne):
        assert block.bbpatch_role == "block"
    assert MobileOne.bbpatch_repeats is True
    assert not getattr(MobileNet_Block, "bbpatch_repeats", False)


def test_conv_bn_hswish_is_a_fusable_ultralytics_conv():
    layer = conv_bn_hswish(3, 16, 2)
    assert isinstance(layer, Conv) and isinstance(layer.act, nn.Hardswish)
    assert layer(torch.zeros(1, 3, 32, 32)).shape == (1, 16, 16, 16)


def test_mobilenet_block_follows_mobilenetv3():
    block = MobileNet_Block(24, 40, 96, 5, 2, True, True)  # an int hidden: channels as written
    expand, depthwise, excite, project = block.conv
    assert expand.conv.out_channels == 96 and isinstance(expand.act, nn.Hardswish)
    assert depthwise.conv.groups == 96 and depthwise.conv.kernel_size == (5, 5) and depthwise.conv.stride == (2, 2)
    assert isinstance(excite, SqueezeExcite) and excite.reduce.out_channels == 24  # 96 / 4, multiple of 8
    assert isinstance(project.act, nn.Identity)  # linear bottleneck
    assert not block.residual and block(torch.zeros(1, 24, 32, 32)).shape == (1, 40, 16, 16)

    plain = MobileNet_Block(16, 16, 16, 3, 1, False, False)  # hidden == c1: no expand conv, ReLU, residual
    assert len(plain.conv) == 2 and isinstance(plain.conv[0].act, nn.ReLU) and plain.residual
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(plain(x), x + plain.conv(x))


@pytest.mark.parametrize("c1, ratio, hidden", [(24, 3.67, 88), (16, 4.5, 72), (8, 4.5, 40), (48, 1.0, 48)])
def test_mobilenet_block_float_hidden_is_an_expansion_ratio_that_follows_width(c1, ratio, hidden):
    block = MobileNet_Block(c1, c1, ratio, 3, 1, False, False)
    assert block.conv[-1].conv.in_channels == hidden
    assert (len(block.conv) == 2) == (hidden == c1)  # ratio 1.0 keeps "no expand conv" at every width


def test_mobileone_stack_feeds_the_right_channels_and_uses_the_repeat_count_once():
    block = MobileOne(16, 32, 3, 4, 2)
    assert len(block.m) == 3  # n blocks, not n x n
    (first_dw, first_pw), *rest = block.m
    assert first_dw.conv_kxk[0].conv.stride == (2, 2) and first_pw.conv_kxk[0].conv.out_channels == 32
    assert all(dw.conv_kxk[0].conv.in_channels == 32 and dw.conv_kxk[0].conv.stride == (1, 1) for dw, _ in rest)
    assert len(first_dw.conv_kxk) == 4  # k over-parameterized branches
    assert block(torch.zeros(1, 16, 32, 32)).shape == (1, 32, 16, 16)


@pytest.mark.parametrize("build, channels", [(lambda: MobileOne(16, 32, 2, 4, 2), 16), (MobileOneS0, 3)])
def test_reparameterization_keeps_outputs(build, channels):
    """What the engine's fuse hook does: bbpatch_reparameterize on the model holding the layer."""
    layer = randomize_batchnorms(build())
    x = torch.randn(1, channels, 64, 64)
    with torch.no_grad():
        before = layer(x)
        parameters_before = sum(p.numel() for p in layer.parameters())
        bbpatch_reparameterize(nn.Sequential(layer))
        after = layer(x)
    assert all(m.reparam_conv is not None for m in layer.modules() if hasattr(m, "reparam_conv"))
    assert not any(hasattr(m, "conv_kxk") for m in layer.modules())
    assert sum(p.numel() for p in layer.parameters()) < parameters_before
    assert not any(p.requires_grad for m in layer.modules() if hasattr(m, "reparam_conv") for p in m.parameters())
    for a, b in zip(before if isinstance(before, list) else [before], after if isinstance(after, list) else [after]):
        assert (a - b).abs().max() <= 1e-4 * max(1.0, a.abs().max())  # within 1e-4 (relative once outputs exceed 1)
