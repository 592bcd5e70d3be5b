"""Whole backbones of bbpatch.modules against timm itself: names, channels, parameters, shapes, options."""

import pytest
import timm
import torch

from bbpatch.models import catalog
from bbpatch.modules import timm_backbones
from bbpatch.modules.timm_backbones import TimmBackbone

# One real (non-meta) model per architecture: the small variant proves what the larger ones share.
ARCHITECTURES = [
    "mobilenetv4_small",
    "MobileNetV4HybridMedium",  # attention blocks
    "MobileNetV3",
    "MobileNetV3Large",
    "FasterNetT0",
    "MobileOneS0",
    "MobileNetV1",
    "MobileNetV2",
]


def on_meta(build):
    """Structure only: no memory, no weight init (FasterNet-L takes seconds to initialize on CPU)."""
    with torch.device("meta"):
        return build()


@pytest.mark.parametrize("timm_name", sorted(catalog.TIMM_CHANNELS))
def test_static_channel_table_matches_timm_feature_info(timm_name):
    info = on_meta(lambda: timm.create_model(timm_name, features_only=True)).feature_info
    assert tuple(info.channels()[-4:]) == catalog.TIMM_CHANNELS[timm_name]
    assert info.reduction()[-4:] == [4, 8, 16, 32]


@pytest.mark.parametrize("name", sorted(catalog.BACKBONES))
def test_named_backbone_is_timm_features_model(name):
    entry = catalog.BACKBONES[name]
    cls = getattr(timm_backbones, name)
    assert cls.__module__ == timm_backbones.__name__ and cls.__qualname__ == name  # picklable by reference
    assert cls.bbpatch_role == "backbone" and cls.timm_name == entry.timm_name
    assert cls.min_input_size == catalog.MIN_INPUT_SIZE

    backbone = on_meta(cls)
    reference = on_meta(lambda: timm.create_model(entry.timm_name, features_only=True))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(backbone) == count(reference)
    assert backbone.channels == list(entry.channels) == reference.feature_info.channels()[-4:]


def test_every_catalog_family_has_its_default_and_module_exports_all_names():
    import bbpatch.modules as modules

    for family, name in catalog.FAMILY_DEFAULTS.items():
        assert catalog.BACKBONES[name].family == family
    assert set(catalog.BACKBONES) | {"TimmBackbone"} <= set(modules.__all__)


def test_family_scales_grow_from_n_to_x_within_their_family():
    """The n variant is the family's lightest (its fast end); no larger scale gets a lighter backbone."""
    for family, variants in catalog.FAMILY_SCALES.items():
        entries = [catalog.BACKBONES[name] for name in variants.values()]
        assert list(variants) == list("nsmlx") and {e.family for e in entries} == {family}
        widths = [sum(e.channels[:3]) for e in entries]  # P5 of MobileNetV3/V4 is a fixed 960/576 projection
        assert widths == sorted(widths) and widths[0] < widths[-1], family
    assert (
        catalog.FAMILY_SCALES["fasternet"]["n"] == "FasterNetT0"
        and catalog.BACKBONES["FasterNet"].timm_name == "fasternet_t2"
    )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_returns_strides_4_to_32_down_to_min_input_size(name):
    """min_input_size (32) was measured; train mode at batch 2 is the hardest case (BatchNorm on 1x1 maps)."""
    backbone = getattr(timm_backbones, name)()
    for size, batch, train in [(backbone.min_input_size, 1, False), (backbone.min_input_size, 2, True)]:
        backbone.train(train)
        with torch.no_grad():
            maps = backbone(torch.zeros(batch, 3, size, size))
        assert [m.shape[1] for m in maps] == backbone.channels
        assert [size // m.shape[-1] for m in maps] == [4, 8, 16, 32]


def test_yaml_positional_args_and_out_levels():
    backbone = timm_backbones.MobileNetV4ConvSmall(False, [3, 4, 5], 0)  # as a YAML writes them
    maps = backbone(torch.zeros(1, 3, 64, 64))
    assert backbone.channels == [64, 96, 960] == [m.shape[1] for m in maps]
    with pytest.raises(ValueError, match="suffix"):
        timm_backbones.MobileNetV4ConvSmall(False, [2, 3, 4])  # P5 must stay layer 4


def test_timm_backbone_takes_any_features_model_and_rejects_missing_strides():
    backbone = TimmBackbone("resnet18", out_levels=(3, 4, 5))
    assert backbone.channels == [128, 256, 512]
    assert [m.shape[-1] for m in backbone(torch.zeros(1, 3, 64, 64))] == [8, 4, 2]
    assert TimmBackbone.min_input_size == 640  # unknown models are probed at the recipe's size
    with pytest.raises(ValueError, match="no map at stride 4"):
        TimmBackbone("vit_tiny_patch16_224", out_levels=(2, 3, 4, 5))  # the simple pyramid makes P3-P5 only


def test_frozen_stages_survive_the_trainer_turning_gradients_back_on():
    backbone = timm_backbones.MobileNetV4ConvSmall(frozen_stages=2)  # stem + stride-4 stage
    for p in backbone.parameters():  # what ultralytics' trainer does to every parameter
        p.requires_grad_(True)
    backbone.train()
    frozen = {n for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("model.conv_stem", "model.bn1", "model.blocks.0.")) for n in frozen)
    assert not backbone.model.bn1.training and backbone.model.blocks[1].training

    sum(m.sum() for m in backbone(torch.randn(2, 3, 64, 64))).backward()
    assert backbone.model.conv_stem.weight.grad is None
    assert backbone.model.blocks[1][0].conv.weight.grad is not None


def test_pretrained_accepts_a_local_timm_checkpoint(tmp_path):
    classifier = timm.create_model("mobilenetv3_small_100", pretrained=False)
    path = tmp_path / "mnv3_small.pth"
    torch.save(classifier.state_dict(), path)

    backbone = timm_backbones.MobileNetV3(str(path))
    assert torch.equal(backbone.model.conv_stem.weight, classifier.conv_stem.weight)
    assert torch.equal(backbone.model.blocks[5][0].conv.weight, classifier.blocks[5][0].conv.weight)
    assert not torch.equal(timm_backbones.MobileNetV3().model.conv_stem.weight, classifier.conv_stem.weight)


def test_timm_registry_is_left_alone():
    assert "mobilenetv4_small" not in timm.list_models()  # bbpatch names are classes, not timm entries
    entry = timm.models.model_entrypoint("mobilenetv4_hybrid_medium")  # timm's own, not overwritten
    assert entry.__module__ == "timm.models.mobilenetv3"
