"""Whole backbones on timm ``features_only`` models: YAML layer 0, returning the maps at strides 4, 8, 16, 32.

``TimmBackbone`` takes any timm model by name; every row of ``_catalog.BACKBONES`` becomes a class that
fixes the timm name, so a YAML reads ``[-1, 1, MobileNetV4ConvSmall, []]`` or ``[-1, 1, FasterNet, [True]]``.
Channels come from timm's ``feature_info``: no forward pass at construction.

timm is imported when a backbone is built (or unpickled), not when this module is: the patched ``tasks.py``
imports every Addmodules class, and timm pulls in torchvision, which would double ``from ultralytics import
YOLO``'s start-up time for models that use no backbone at all.
"""

from torch import nn

from ._catalog import BACKBONES, MIN_INPUT_SIZE
from ._pretrained import checkpoint, hub_unreachable, keep_as_trained, statistics_kept
from ._rebuild import RebuildOnLoad

PYRAMID_LEVELS = (2, 3, 4, 5)  # P2/4, P3/8, P4/16, P5/32


class TimmBackbone(RebuildOnLoad, nn.Module):
    """A timm model's feature pyramid as one YAML layer: ``[-1, 1, TimmBackbone, [convnext_atto]]``.

    Args:
        model_name: any timm model that supports ``features_only``.
        pretrained: False, True (timm's hub weights) or the path of a local checkpoint (offline machines):
            relative to the working directory, absolute, or with ``~``. The backbone then computes exactly
            what timm's own ``features_only`` model computes from those weights (see ``_pretrained``).
        out_levels: pyramid levels to return (P<n> has stride 2**n); a suffix of (2, 3, 4, 5), so that
            P3, P4, P5 stay YAML layers 2, 3, 4.
        frozen_stages: freeze the first n stages of timm's ``feature_info`` (shallowest first, stem included):
            no gradients, BatchNorm statistics fixed. Re-applied on every ``train()``, because the
            ultralytics trainer turns ``requires_grad`` back on.
    """

    bbpatch_role = "backbone"
    bbpatch_raw_args = True  # parse_model hands the YAML's strings over as written: checkpoint paths
    min_input_size = 640  # an arbitrary timm model is stride-probed at the recipe's size; named ones declare theirs

    def __init__(self, model_name, pretrained=False, out_levels=PYRAMID_LEVELS, frozen_stages=0):
        super().__init__()
        self.config = dict(model_name=model_name, out_levels=list(out_levels), frozen_stages=frozen_stages)
        self.model = keep_as_trained(create_features_model(model_name, pretrained))
        info = self.model.feature_info
        self.out_indices = level_indices(model_name, info.reduction(), out_levels)
        self.channels = [info.channels()[i] for i in self.out_indices]
        self.frozen = frozen_module_names(self.model, info.module_name()[frozen_stages - 1]) if frozen_stages else []
        if self.frozen:
            freeze(self.model, self.frozen)

    def _construct(self, **config):
        TimmBackbone.__init__(self, **config)

    def before_stride_probe(self):
        """The next forward is the model's stride probe on zeros: it must not move the loaded statistics."""
        self._stride_probe = True

    def forward(self, x):
        if vars(self).pop("_stride_probe", False):
            with statistics_kept(self.model):
                return self.forward(x)
        features = self.model(x)
        return [features[i] for i in self.out_indices]

    def train(self, mode=True):
        super().train(mode)
        freeze(self.model, self.frozen)
        return self


def create_features_model(model_name, pretrained):
    import timm  # deferred: see the module docstring

    weights = checkpoint(pretrained)
    if isinstance(weights, str):  # a local checkpoint file; timm loads it like hub weights (head dropped)
        overlay = dict(file=weights)
        return timm.create_model(model_name, pretrained=True, features_only=True, pretrained_cfg_overlay=overlay)
    try:
        return timm.create_model(model_name, pretrained=weights, features_only=True)
    except OSError as error:  # huggingface_hub's LocalEntryNotFoundError, a refused connection ...
        raise hub_unreachable(model_name, error) from None


def level_indices(model_name, reductions, out_levels):
    """Indices of timm's feature maps for the requested pyramid levels (the deepest map of each stride)."""
    out_levels = tuple(out_levels)
    if not out_levels or out_levels != PYRAMID_LEVELS[-len(out_levels) :]:
        raise ValueError(
            f"out_levels must be a suffix of {PYRAMID_LEVELS} (P3, P4, P5 are layers 2, 3, 4), got {out_levels}"
        )
    missing = [level for level in out_levels if 2**level not in reductions]
    if missing:
        raise ValueError(
            f"timm model {model_name!r} has no map at stride {2 ** missing[0]}; its strides are {reductions}"
        )
    return [len(reductions) - 1 - reductions[::-1].index(2**level) for level in out_levels]


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
