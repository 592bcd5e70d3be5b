"""Whole backbones on timm ``features_only`` models: YAML layer 0, returning the maps at strides 4, 8, 16, 32
(and the stride-2 map too when ``out_levels`` asks for P1); a model without a stride-4 map returns 8, 16, 32,
and one without them all (plain ViTs, LeViT) gets them from a simple feature pyramid (``_timm_fit``).

``TimmBackbone`` takes any timm model by name; every row of ``_catalog.BACKBONES`` becomes a class that
fixes the timm name, so a YAML reads ``[-1, 1, MobileNetV4ConvSmall, []]`` or ``[-1, 1, FasterNet, [True]]``.
Channels come from timm's ``feature_info``: no forward pass at construction.

timm is imported when a backbone is built (or unpickled), not when this module is: the patched ``tasks.py``
imports every Addmodules class, and timm pulls in torchvision, which would double ``from ultralytics import
YOLO``'s start-up time for models that use no backbone at all.
"""

from torch import nn

from . import _timm_fit as fit
from ._catalog import BACKBONES, MIN_INPUT_SIZE
from ._pretrained import PretrainedWeightsError, checkpoint, hub_unreachable, keep_as_trained, statistics_kept
from ._rebuild import RebuildOnLoad

PYRAMID_LEVELS = (2, 3, 4, 5)  # the default: P2/4, P3/8, P4/16, P5/32 in layer slots 1..4 (slot 0 empty)
LEVELS = (1, *PYRAMID_LEVELS)  # with P1/2 as well: slots 0..4, for heads that read the stride-2 map


class TimmBackbone(RebuildOnLoad, nn.Module):
    """A timm model's feature pyramid as one YAML layer: ``[-1, 1, TimmBackbone, [convnext_atto]]``.

    Args:
        model_name: any timm model that supports ``features_only``.
        pretrained: False, True (timm's hub weights) or the path of a local checkpoint (offline machines):
            relative to the working directory, absolute, or with ``~``. The backbone then computes exactly
            what timm's own ``features_only`` model computes from those weights (see ``_pretrained``).
        out_levels: pyramid levels to return (P<n> has stride 2**n); a suffix of (1, 2, 3, 4, 5), so that
            P3, P4, P5 stay YAML layers 2, 3, 4 (P1 is layer 0, P2 layer 1). None (the default): P2-P5 where
            the model has a stride-4 map, else P3-P5; levels it lacks come from a simple feature pyramid.
        frozen_stages: freeze the first n stages of timm's ``feature_info`` (shallowest first, stem included):
            no gradients, BatchNorm statistics fixed. Re-applied on every ``train()``, because the
            ultralytics trainer turns ``requires_grad`` back on.
        img_size: the training size a fixed-input-size model (Swin, ViT, CoaT...) is built for; ignored by
            the others. Without a dynamic-size option in timm, such a model computes at this size only
            (smaller inputs padded, larger ones scaled down).
    """

    bbpatch_role = "backbone"
    bbpatch_raw_args = True  # parse_model hands the YAML's strings over as written: checkpoint paths
    min_input_size = 640  # an arbitrary timm model is stride-probed at the recipe's size; named ones declare theirs

    def __init__(self, model_name, pretrained=False, out_levels=None, frozen_stages=0, img_size=fit.TRAIN_SIZE):
        super().__init__()
        out_levels, img_size = written_none(out_levels), int(img_size)
        levels_arg = None if out_levels is None else list(out_levels)
        self.config = dict(model_name=model_name, out_levels=levels_arg, frozen_stages=frozen_stages, img_size=img_size)
        self.timm_options, self.takes_any_size = fit.size_options(
            lambda **options: create_features_model(model_name, False, **options), model_name, img_size
        )
        self.model = keep_as_trained(create_features_model(model_name, pretrained, **self.timm_options))
        info = self.model.feature_info
        reductions = info.reduction()
        self.resize = reductions[-1] if not fit.is_power_of_two(reductions[-1]) else None  # patch 14
        map_strides = [fit.NOMINAL_STRIDE if self.resize else r for r in reductions]
        self.built_size = self.timm_options.get("img_size", img_size)
        self.pad_multiple, self.pad_minimum = fit.pad_multiple(model_name), fit.pad_minimum(model_name)
        if not self.takes_any_size:
            self.max_input_size = img_size  # the stride probe stays within it: larger inputs are scaled down
        output_fmt = getattr(self.model, "output_fmt", "NCHW")
        self.output_fmt = str(getattr(output_fmt, "value", output_fmt))  # timm's Format enum: str() is 'Format.NHWC'

        levels = pyramid_levels(model_name, map_strides, out_levels)
        self.strides = [2**level for level in levels]
        deepest = {s: i for i, s in enumerate(map_strides)}  # the deepest map of each stride
        if all(s in deepest for s in self.strides):
            self.pyramid = None
            self.out_indices = [deepest[s] for s in self.strides]
            self.channels = [info.channels()[i] for i in self.out_indices]
        else:
            self.out_indices = sorted(deepest.values())
            used = [map_strides[i] for i in self.out_indices]
            self.pyramid = fit.SimplePyramid(used, [info.channels()[i] for i in self.out_indices], levels)
            self.channels = list(self.pyramid.channels)
        self.frozen = frozen_module_names(self.model, info.module_name()[frozen_stages - 1]) if frozen_stages else []
        if self.frozen:
            freeze(self.model, self.frozen)

    def _construct(self, **config):
        TimmBackbone.__init__(self, **config)

    def before_stride_probe(self):
        """The next forward is the model's stride probe on zeros: it must not move the loaded statistics."""
        self._stride_probe = True

    def timm_maps(self, x):
        """The maps of timm's own model that the pyramid levels come from, NCHW, as timm computes them."""
        return self._timm_maps(x)[0]

    def _timm_maps(self, x):
        x, content = fit.fitted_input(
            x, self.built_size, self.takes_any_size, self.resize, self.pad_multiple, self.pad_minimum
        )
        try:
            features = fit.channels_first(self.model(x), self.output_fmt)
        except RuntimeError as error:  # timm's shape errors deep inside a block: one line naming the model and size
            if "out of memory" in str(error):
                raise
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            h, w = x.shape[-2:]
            name = self.config["model_name"]
            raise RuntimeError(f"timm's {name} cannot compute on a {h}x{w} input: {first}") from None
        return [features[i] for i in self.out_indices], content

    def forward(self, x):
        if vars(self).pop("_stride_probe", False):
            with statistics_kept(self.model):
                return self.forward(x)
        size = x.shape[-2:]
        maps, content = self._timm_maps(x)
        if self.pyramid is not None:
            maps = self.pyramid(maps)
        return fit.aligned(maps, self.strides, size, content)

    def train(self, mode=True):
        super().train(mode)
        freeze(self.model, self.frozen)
        return self


def create_features_model(model_name, pretrained, **options):
    import timm  # deferred: see the module docstring

    weights = checkpoint(pretrained)
    try:
        if isinstance(weights, str):  # a local checkpoint file; timm loads it like hub weights (head dropped)
            overlay = dict(file=weights)
            return timm.create_model(
                model_name, pretrained=True, features_only=True, pretrained_cfg_overlay=overlay, **options
            )
        return timm.create_model(model_name, pretrained=weights, features_only=True, **options)
    except OSError as error:  # huggingface_hub's LocalEntryNotFoundError, a refused connection ...
        raise hub_unreachable(model_name, error) from None
    except RuntimeError as error:
        if weights and "img_size" in options and "size mismatch" in str(error):
            raise weights_for_another_size(model_name, options["img_size"], error) from None
        raise


def weights_for_another_size(model_name, img_size, error):
    """One line for weights whose position embeddings / attention biases fit their training resolution only."""
    import timm

    trained = timm.models.get_pretrained_cfg(model_name).input_size[-1]
    mismatch = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), "")
    return PretrainedWeightsError(
        f"timm cannot load {model_name}'s weights (trained at {trained}x{trained}) into the model built for "
        f"img_size={img_size} ({mismatch.split(':')[0]}: a resolution-dependent tensor timm does not resize): "
        f"build it with img_size={trained} (TimmBackbone's 5th arg; inputs are padded or scaled into it) or "
        "without pretrained weights"
    )


def written_none(value):
    """``None`` as a YAML writes it among raw args (parse_model leaves ``None`` a string for backbones)."""
    return None if isinstance(value, str) and value.strip().lower() in ("none", "null", "~", "") else value


def pyramid_levels(model_name, strides, out_levels):
    """The levels the backbone returns: ``out_levels``, or by default P2-P5 / P3-P5 as the model has them.

    A level the model lacks is made by the simple pyramid from a neighbouring stride, P3 and deeper only.
    """
    if out_levels is None:
        out_levels = PYRAMID_LEVELS if all(2**level in strides for level in PYRAMID_LEVELS) else (3, 4, 5)
    out_levels = tuple(out_levels)
    if not out_levels or out_levels != LEVELS[-len(out_levels) :]:
        raise ValueError(f"out_levels must be a suffix of {LEVELS} (P3, P4, P5 are layers 2, 3, 4), got {out_levels}")
    for level in out_levels:
        stride = 2**level
        if stride in strides:
            continue
        if level < 3 or not {stride * 2, stride // 2} & set(strides):
            raise ValueError(f"timm model {model_name!r} has no map at stride {stride}; its strides are {strides}")
    return out_levels


def frozen_module_names(model, last_module):
    """Submodules that run up to and including ``last_module``, in registration order.

    Containers enclosing ``last_module`` are left out: freezing them would freeze later stages too.
    """
    aliases = (last_module, last_module.replace(".", "_"))  # timm's FeatureListNet flattens 'stages.0'
    names = [name for name, _ in model.named_modules()][1:]
    end = max(i for i, n in enumerate(names) if any(n == a or n.startswith(a + ".") for a in aliases))
    return [n for n in names[: end + 1] if not any(a.startswith(n + ".") for a in aliases)]


def freeze(model, names):
    for name in names:
        module = model.get_submodule(name)
        for p in module.parameters(recurse=False):
            p.requires_grad_(False)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def named_backbone(name, timm_name, family):
    """A module-level subclass of TimmBackbone that fixes the timm model, so YAML args stay optional."""

    def __init__(self, pretrained=False, out_levels=PYRAMID_LEVELS, frozen_stages=0):
        TimmBackbone.__init__(self, timm_name, pretrained, out_levels, frozen_stages)

    __init__.__qualname__ = f"{name}.__init__"
    attributes = dict(
        __init__=__init__,
        __module__=__name__,
        __qualname__=name,
        __doc__=f"timm's {timm_name} ({family}) as a whole backbone; YAML args [pretrained, out_levels, frozen_stages]",
        timm_name=timm_name,
        family=family,
        min_input_size=MIN_INPUT_SIZE,
    )
    return type(name, (TimmBackbone,), attributes)


globals().update({name: named_backbone(name, timm_name, family) for name, timm_name, family in BACKBONES})
