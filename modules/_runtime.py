"""Helpers that the patched ultralytics ``tasks.py`` calls. Kept tiny: every name starts with ``bbpatch_``."""

__all__ = [
    "bbpatch_role",
    "bbpatch_backbone",
    "bbpatch_channels",
    "bbpatch_takes_repeats",
    "bbpatch_takes_raw_args",
    "bbpatch_save_backbone_outputs",
    "bbpatch_probe_size",
    "bbpatch_reparameterize",
]

import re
import sys
import weakref
from pathlib import Path

from ._pretrained import PretrainedWeightsError

try:  # written by ``bbpatch adopt`` in a tree that was patched by hand with the blog recipe
    from . import _adopted
except ImportError:
    _adopted = None
RECIPE_BACKBONES = getattr(_adopted, "RECIPE_BACKBONES", {})
USER_NAMES = getattr(_adopted, "USER_NAMES", ())
SHIPPED_YAMLS = getattr(_adopted, "SHIPPED_YAMLS", None)
_RECIPE_BUILT = weakref.WeakKeyDictionary()  # recipe backbone instance -> the attribute its channels are in

BACKBONE_SLOTS = 5  # a backbone fills layer indices 0..4: strides 2 (or None), 4, 8, 16, 32


def bbpatch_role(m):
    """'backbone', 'block' or None for a class named in a model YAML (or a recipe tree's backbone factory)."""
    if RECIPE_BACKBONES and getattr(m, "bbpatch_role", None) is None and _recipe_backbone(m) is not None:
        return "backbone"  # a class or a factory function: the recipe's branch tested identity, so does this
    return getattr(m, "bbpatch_role", None) if isinstance(m, type) else None


def _recipe_backbone(m):
    """``(channels attribute, takes the YAML's args)`` when ``m`` is what the recipe's branch compared layers with:
    the object tasks.py binds to one of the names adopt read from that branch; else None."""
    tasks = vars(sys.modules.get("ultralytics.nn.tasks", sys))
    return next((entry for name, entry in RECIPE_BACKBONES.items() if tasks.get(name) is m), None)


def _from_shipped_yaml(d):
    """The model dict comes from one of the YAMLs bbpatch installed (found where ultralytics' check_yaml finds it)."""
    if SHIPPED_YAMLS is None:
        return False
    shipped = (Path(__file__).parent / SHIPPED_YAMLS).resolve()
    path = Path(str(d.get("yaml_file", "")))
    if path.parent != Path("."):
        return path.resolve().parent == shipped
    if path.exists():  # check_yaml takes a file in the working directory first: the user's
        return False
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", path.name)  # yolov8n-x.yaml is read from yolov8-x.yaml
    return (shipped / path.name).is_file() or (shipped / unified).is_file()


def _own_class(name):
    """bbpatch's backbone class of that name (kept as an attribute of this package even where it is not exported)."""
    import importlib

    cls = getattr(importlib.import_module(__package__), str(name), None)
    return cls if isinstance(cls, type) and getattr(cls, "bbpatch_role", None) == "backbone" else None


def bbpatch_backbone(name, m, args, d):
    """Build a model's backbone layer: ``(type name, module)``.

    ``name`` and ``m`` are layer 0's YAML name and class, ``d`` parse_model's model dict. When the YAML's
    ``backbone_scales`` names a variant for the model's scale and layer 0 is one of its variants, that variant is
    built instead; a layer 0 the user changed to anything else is built as written. Without a scale letter in
    the file name ultralytics builds the first row of ``scales``; the variant follows it the same way.
    """
    entry = _recipe_backbone(m) if RECIPE_BACKBONES else None
    if entry is not None:  # a recipe class: bbpatch's class of that name for bbpatch's own YAMLs, else as the recipe
        own = _own_class(name) if _from_shipped_yaml(d) else None
        if own is None:
            built = m(*args) if entry[1] else m()
            _RECIPE_BUILT[built] = entry[0]
            return name, built
        m = own
    variants = d.get("backbone_scales") or {}
    if not isinstance(variants, dict):
        raise ValueError(f"{d.get('yaml_file', 'the model YAML')}: backbone_scales must map scale letters to backbones")
    scale = d.get("scale") or next(iter(d.get("scales") or {}), None)
    chosen = variants.get(scale)
    if chosen is not None and chosen != name and name in variants.values():
        name, m = chosen, _backbone_class(chosen, d.get("yaml_file", "the model YAML"), scale)
    try:
        return name, m(*args)
    except PretrainedWeightsError as error:  # one line naming the YAML and the layer, not timm's traceback
        raise PretrainedWeightsError(f"{d.get('yaml_file', 'the model YAML')} layer 0 ({name}): {error}") from None


def _backbone_class(name, yaml_file, scale):
    import importlib

    cls = getattr(importlib.import_module(__package__), str(name), None)
    if bbpatch_role(cls) != "backbone":
        raise ValueError(
            f"{yaml_file}: backbone_scales names {name!r} for scale {scale!r}, which is not a backbone class in "
            f"{__package__}; use a name from `bbpatch list`"
        )
    return cls


def bbpatch_channels(backbone):
    """Output channels of an instantiated backbone, without a forward pass."""
    recipe_attribute = _RECIPE_BUILT.get(backbone) if RECIPE_BACKBONES else None
    if recipe_attribute is not None:
        return list(getattr(backbone, recipe_attribute))  # the attribute the recipe's branch read: width_list, channel
    channels = getattr(backbone, "channels", None) or getattr(backbone, "width_list", None)
    if not channels:
        raise TypeError(f"{type(backbone).__name__} declares bbpatch_role='backbone' but has no 'channels' list")
    return list(channels)


def bbpatch_takes_repeats(m):
    """True for block classes whose third argument is the YAML repeat count."""
    return bool(getattr(m, "bbpatch_repeats", False))


def bbpatch_takes_raw_args(m):
    """True for backbone classes that read their YAML strings themselves (checkpoint paths such as ``./w.pth``,
    ``~/w.pth`` or ``C:\\w.pth``, which parse_model's ``ast.literal_eval`` would raise a SyntaxError on)."""
    return bbpatch_role(m) == "backbone" and bool(getattr(m, "bbpatch_raw_args", False))


def bbpatch_save_backbone_outputs(x, y, save):
    """Spread a backbone's feature list over layer slots 0..4 of ``y``; return the last map as the running ``x``.

    Four maps (P2-P5) leave slot 0 empty; five (P1-P5, ``out_levels`` from 1) fill every slot.
    """
    x = list(x)
    x = [None] * (BACKBONE_SLOTS - len(x)) + x
    y.extend(xi if i in save else None for i, xi in enumerate(x))
    return x[-1]


def bbpatch_probe_size(model, default):
    """Stride-probe image size: the stock size unless a backbone in the model asks for a larger one, and never
    above what a backbone takes (a fixed-size timm model built for a small ``img_size``).

    Called right before the probe's forward: a backbone that must not see it as training data is told so.
    """
    backbones = [m for m in model.modules() if getattr(m, "backbone", False)]
    for m in backbones:
        if hasattr(m, "before_stride_probe"):
            m.before_stride_probe()
    size = max([default, *(getattr(m, "min_input_size", 640) for m in backbones)])
    caps = [m.max_input_size for m in backbones if getattr(m, "max_input_size", None)]  # fixed-size timm models
    return min([size, *caps])


def bbpatch_reparameterize(model):
    """Fold multi-branch training blocks (MobileOne) of bbpatch modules into their single-branch inference form.

    Like ultralytics' own Conv+BN fusion, the folded weights are inference-only: no gradients.
    """
    for owner in [m for m in model.modules() if getattr(type(m), "bbpatch_role", None)]:
        for m in [m for m in owner.modules() if m is not owner and hasattr(m, "reparameterize")]:
            m.reparameterize()
            m.requires_grad_(False)
        if hasattr(owner, "reparameterize"):
            owner.reparameterize()
