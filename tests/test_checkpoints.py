"""Checkpoints of bbpatch layers: pickled as a rebuild recipe that names no timm class (weights_only safe)."""

import copy
import io
import pickle

import torch
from torch import nn

from bbpatch.modules import MobileNetV4ConvSmall, MobileOne, MobileOneS0, TimmBackbone

ULTRALYTICS_LAYER_ATTRIBUTES = dict(i=0, f=-1, type="MobileNetV4ConvSmall", np=1261664, backbone=True)


def as_ultralytics_builds_it(module):
    """The attributes parse_model attaches and the BatchNorm settings initialize_weights changes."""
    vars(module).update(ULTRALYTICS_LAYER_ATTRIBUTES)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    return module.eval()


def saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def load_weights_only(buffer, *classes):
    with torch.serialization.safe_globals(list(classes)):
        return torch.load(buffer, weights_only=True)


def outputs(module, size=64):
    torch.manual_seed(0)
    with torch.no_grad():
        out = module(torch.randn(1, 3, size, size))
    return out if isinstance(out, list) else [out]


def test_pickle_round_trip_restores_weights_layer_attributes_and_bn_settings():
    backbone = as_ultralytics_builds_it(MobileNetV4ConvSmall())
    backbone.model.blocks[4].requires_grad_(False)  # as in an EMA copy or a frozen layer
    restored = pickle.loads(pickle.dumps(backbone))
    assert [p.requires_grad for p in restored.parameters()] == [p.requires_grad for p in backbone.parameters()]
    assert type(restored) is MobileNetV4ConvSmall
    assert {k: getattr(restored, k) for k in ULTRALYTICS_LAYER_ATTRIBUTES} == ULTRALYTICS_LAYER_ATTRIBUTES
    assert restored.model.bn1.eps == 1e-3 and not restored.training and not restored.model.bn1.training
    assert all(torch.equal(a, b) for a, b in zip(outputs(backbone), outputs(restored)))


def test_half_checkpoint_loads_with_weights_only_and_names_no_timm_class():
    backbone = as_ultralytics_builds_it(MobileNetV4ConvSmall())
    buffer = saved(copy.deepcopy(backbone).half())  # what ultralytics saves
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(buffer)
    assert needed == ["bbpatch.modules.timm_backbones.MobileNetV4ConvSmall"]
    assert not any(name.startswith("timm.") for name in needed)

    buffer.seek(0)
    loaded = load_weights_only(buffer, MobileNetV4ConvSmall)
    assert next(loaded.parameters()).dtype == torch.float16
    expected = copy.deepcopy(backbone).half().float()
    assert all(torch.equal(a, b) for a, b in zip(outputs(expected), outputs(loaded.float())))
    assert loaded.i == 0 and loaded.backbone is True


def test_deepcopy_keeps_the_reparameterized_form():
    backbone = MobileOneS0().eval()
    backbone.reparameterize()
    copied = copy.deepcopy(backbone)
    assert not any(hasattr(m, "conv_kxk") for m in copied.modules())  # still single-branch
    assert all(torch.equal(a, b) for a, b in zip(outputs(backbone), outputs(copied)))


def test_mobileone_block_checkpoint_names_no_timm_class():
    block = MobileOne(16, 32, 2, 4, 2).eval()
    buffer = saved(block)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(buffer) == [
        "bbpatch.modules.mobileone_blocks.MobileOne"
    ]
    buffer.seek(0)
    loaded = load_weights_only(buffer, MobileOne)
    x = torch.randn(1, 16, 32, 32)
    assert torch.equal(block(x), loaded(x))


def test_any_reparameterized_timm_backbone_round_trips_with_weights_only():
    """FastViT: timm reparameterization through TimmBackbone, and str-enum attributes (timm's Format) left out."""
    backbone = TimmBackbone("fastvit_t8").eval()
    before = outputs(backbone)
    backbone.reparameterize()
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(before, outputs(backbone)))
    buffer = saved(backbone)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(buffer) == [
        "bbpatch.modules.timm_backbones.TimmBackbone"
    ]
    buffer.seek(0)
    loaded = load_weights_only(buffer, TimmBackbone)
    assert all(torch.equal(a, b) for a, b in zip(outputs(backbone), outputs(loaded)))
