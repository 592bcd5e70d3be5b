"""Model YAMLs with a bbpatch backbone: the shipped ones (``yamls/``, from ``templates/heads/``) and ones
derived from any stock ultralytics YAML (``bbpatch yaml``).

Both are one operation, :func:`swap_backbone`: find which backbone layers the rest of the model reads at
which stride (2 to 32), put the new backbone in their place and renumber every later ``from`` index to the
new map of the same stride. A whole backbone is one layer filling indices 0-4 (P1 = 0 when it returns P1,
P2 = 1, P3 = 2, P4 = 3, P5 = 4); a layer-by-layer backbone keeps its own numbering. Context layers that
close a backbone (SPPF, C2PSA...) stay, right after the new one.

The replaced layers' strides come from :mod:`bbpatch.models.strides`: a table of ultralytics' own modules, or, for
any other module (a fork's), a measurement in the tree's own ultralytics, run in a subprocess; this module
imports neither torch nor ultralytics.

``python -m bbpatch.models.yamlgen [DIR]`` regenerates ``yamls/``; ``python -m bbpatch.models.yamlgen --head-templates``
regenerates the head templates of ``STOCK_HEADS`` from the installed release's stock YAMLs.
"""

import json
import math
import sys
from pathlib import Path

import yaml

from bbpatch.models import base_model, catalog, strides

PLACEHOLDER = "BACKBONE"  # layer 0 of a head template
P1 = 2  # the stride of the one map a whole backbone gives only with out_levels from 1
LEVELS_FROM_P1 = (1, 2, 3, 4, 5)  # modules/timm_backbones.py LEVELS: layer 0's maps fill slots 0..4
CONTEXT_MODULES = {"SPPF", "SPP", "SPPELAN", "C2PSA", "PSA", "AIFI"}  # closing layers that work on P5 and stay
SAME_CHANNEL_MODULES = {"C2PSA", "PSA"}  # assert c1 == c2: right after a new backbone they need a 1x1 adapter
BACKBONE_SCALES = "backbone_scales"  # top-level YAML key read by the patched parse_model (bbpatch_backbone)
BARE_STRINGS = {"None", "nc", "kpt_shape"}  # names parse_model resolves; other strings are quoted

HEADS = (
    "yolov8", "yolov8-seg", "yolov8-pose", "yolo11", "yolo11-seg", "yolo11-pose", "yolov5", "rtdetr",
    "yolo26", "yolo26-seg", "yolo26-pose", "yolo26-obb", "yolo12",
)  # fmt: skip
STOCK_HEADS = {  # head templates derived from a stock YAML as it is (the older ones above were written by hand)
    "yolo26": ("yolo26.yaml", "YOLO26 detect (P3-P5, end-to-end)"),
    "yolo26-seg": ("yolo26-seg.yaml", "YOLO26 segment (P3-P5, end-to-end)"),
    "yolo26-pose": ("yolo26-pose.yaml", "YOLO26 pose (P3-P5, end-to-end)"),
    "yolo26-obb": ("yolo26-obb.yaml", "YOLO26 oriented boxes (P3-P5, end-to-end)"),
    "yolo12": ("yolo12.yaml", "YOLO12 detect (P3-P5)"),
}
BLOCK_SYSTEMS = {  # output name: (head template, layer-by-layer backbone template)
    "yolov5-mobilenetv3-small": ("yolov5", "mobilenetv3-small"),  # seed 003
    "yolov5-mobilenetv3-large": ("yolov5", "mobilenetv3-large"),  # seed 003
    "yolov5-mobileone-blocks": ("yolov5", "mobileone"),  # seed 004 (yolov5-mobileone.yaml is the whole MobileOne-S0)
}


# ---------------------------------------------------------------- strides and swapping


is_whole_backbone = strides.is_whole_backbone


def slot_strides(layers):
    """Table strides of every layer index the layers occupy, a module the table lacks counting as 1 (comments)."""
    return strides.table_strides(layers, lenient=True)


def context_start(backbone):
    """Index of the first closing context layer of a backbone section (its length when there is none)."""
    keep = len(backbone)
    while keep > 0 and backbone[keep - 1][2] in CONTEXT_MODULES:
        keep -= 1
    return keep


def reads(layers, first_position):
    """(position, absolute index read) for every ``from`` of ``layers``, the first at ``first_position``."""
    for position, (f, *_rest) in enumerate(layers, first_position):
        for x in [f] if isinstance(f, int) else f:
            yield position, position + x if x < 0 else x


def indices_read(model, replaced):
    """The indices below ``replaced`` that the layers after the replaced ones read."""
    keep = context_start(model["backbone"])
    later = model["backbone"][keep:] + model["head"]
    return sorted({target for _, target in reads(later, replaced) if target < replaced})


def strides_read(model, old_strides):
    """The strides at which the layers after the replaced ones read them."""
    return {old_strides[index] for index in indices_read(model, len(old_strides))}


def deepest_index_per_stride(by_slot):
    return {s: i for i, s in enumerate(by_slot) if s is not None}


def swap_backbone(model, new_backbone, old_strides=None, read_through=None):
    """A copy of ``model`` whose backbone layers before its closing context layers are ``new_backbone``.

    ``old_strides``: the stride of every layer index those layers occupy (measured); by default the table's.
    ``read_through``: {replaced layer index: new layer index} for reads that go to a given layer of
    ``new_backbone`` (a channel adapter) instead of its map of the same stride.
    """
    old = model["backbone"]
    keep = context_start(old)
    read_through = read_through or {}
    if keep < len(old) and old[keep][2] in SAME_CHANNEL_MODULES and not read_through:  # yolo11-cls: C2PSA next
        new_backbone = [*new_backbone, [-1, 1, "Conv", [old[keep][3][0], 1, 1]]]
    if old_strides is None:
        old_strides = strides.table_strides(old[:keep])
        if old_strides is None:
            raise strides.StrideError("a backbone module is not in the stride table: derive with measured strides")
    new_strides = strides.table_strides(new_backbone)
    new_index_of = deepest_index_per_stride(new_strides)
    replaced, shift = len(old_strides), len(new_strides) - len(old_strides)

    def new_index(old_index):
        if old_index >= replaced:
            return old_index + shift
        if old_index in read_through:
            return read_through[old_index]
        stride = old_strides[old_index]
        if isinstance(stride, strides.Unsure):
            raise strides.StrideError(
                f"{stride.layer}, which the model reads, {stride.why}: bbpatch cannot tell which map of the new "
                "backbone to give it"
            )
        if stride not in new_index_of:
            have = ", ".join(str(s) for s in new_strides if s is not None)
            name = f"layer {old_index} ({old[old_index][2]})" if keep == replaced else f"layer {old_index}"
            raise ValueError(
                f"the model reads backbone {name} at stride {stride}; the new backbone has no such map "
                f"(its strides: {have})"
            )
        return new_index_of[stride]

    def renumber(position, f):
        absolute = position + f if f < 0 else f
        target = new_index(absolute)
        return f if f < 0 and position + shift + f == target else target

    def renumbered(layers, first_position):
        out = []
        for position, (f, n, module, args) in enumerate(layers, first_position):
            froms = renumber(position, f) if isinstance(f, int) else [renumber(position, x) for x in f]
            out.append([froms, n, module, args])
        return out

    swapped = dict(model)
    swapped["backbone"] = [list(layer) for layer in new_backbone] + renumbered(old[keep:], replaced)
    swapped["head"] = renumbered(model["head"], replaced + len(old) - keep)
    return swapped


def whole_backbone_layer(name, args=(), levels=None):
    """Layer 0 for a catalog name, or ``timm:<model>`` for TimmBackbone; ``levels``: its out_levels arg."""
    args = list(args)
    if levels is not None:
        args = [*(args or [False])[:1], list(levels)]  # [pretrained, out_levels]
    if name.startswith("timm:"):
        return [-1, 1, "TimmBackbone", [name[len("timm:") :], *args]]
    catalog.lookup(name)
    return [-1, 1, name, list(args)]


def channel_adapters(model, layer, old_strides, old_channels):
    """1x1 ``Conv`` layers after the backbone that give every replaced layer the rest of the model reads its
    stock channels, at every scale: ``([adapter layers], {replaced index: adapter index})``.

    For heads that assume the stock backbone's channels (YOLOv13's HyperACE). An adapter's YAML channels are the
    replaced layer's first arg, which parse_model scales as it scaled that layer: checked against the channels
    measured at the first scale, else refused.
    """
    slot_of = deepest_index_per_stride(strides.table_strides([layer]))
    width, max_channels = scale_factors(model)
    adapters, read_through = [], {}
    for index in indices_read(model, len(old_strides)):
        if isinstance(old_strides[index], strides.Unsure) or old_strides[index] not in slot_of:
            break  # swap_backbone says why no map of the new backbone can stand in for it
        module, layer_args = model["backbone"][index][2], model["backbone"][index][3]
        stock = layer_args[0] if layer_args and type(layer_args[0]) is int else None
        measured = old_channels[index]
        if stock is None or measured != math.ceil(min(stock, max_channels) * width / 8) * 8:
            raise ValueError(
                f"cannot adapt channels to layer {index} ({module}): its {measured} channels are not its first arg "
                "scaled like a Conv's; derive without --adapt-channels"
            )
        read_through[index] = strides.WHOLE_BACKBONE_SLOTS + len(adapters)
        adapters.append([slot_of[old_strides[index]], 1, "Conv", [stock, 1, 1]])
    return adapters, read_through


def scale_factors(model):
    """(width multiple, max channels) of the scale ultralytics builds first, as parse_model reads them."""
    scales = model.get("scales") or {}
    factors = next(iter(scales.values()))[1:3] if scales else [model.get("width_multiple", 1.0), float("inf")]
    if len(factors) < 2 or not all(isinstance(x, (int, float)) and x > 0 for x in factors):
        raise ValueError(f"no width multiple and max channels in its first scale ({factors}): cannot adapt channels")
    return tuple(factors)


class NoStride2Map(ValueError):
    """The head reads a stride-2 map and the chosen backbone has none."""


def check_stride2_maps(names):
    """Every backbone in ``names`` has a stride-2 map: catalog names from the catalog, ``timm:`` models from timm's
    feature_info (a subprocess)."""
    for name in dict.fromkeys(names):
        if name in catalog.FAMILY_SCALES:
            continue
        if name.startswith("timm:"):
            reductions = strides.timm_reductions(name[len("timm:") :])
            if P1 not in reductions:
                raise NoStride2Map(
                    f"the model reads a stride-2 map (P1) and timm's {name[len('timm:') :]} has none: its maps are "
                    f"at strides {reductions}; pick a timm model with one (resnet18, regnetx_002...)"
                )
            continue
        entry = catalog.lookup(name)
        if entry.p1_channels is None:
            raise NoStride2Map(
                f"the model reads a stride-2 map (P1) and {name} (timm {entry.timm_name}) has none: its maps start "
                "at stride 4; pick a backbone with one (MobileNetV4, MobileNetV3, MobileOne, MobileNetV1/V2)"
            )


# ---------------------------------------------------------------- writing YAML


def flow(value):
    """A value in the flow style of ultralytics' YAMLs: ``[-1, 1, Conv, [256, 3, 2]]``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value if value in BARE_STRINGS else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} in a model YAML")


def level_slots(module, args, with_strides=False):
    """'P3/8 = 2, P4/16 = 3, P5/32 = 4': where a whole backbone's maps are (from P1 when it returns P1)."""
    levels = strides.whole_backbone_levels(module, args)
    shown = ([1, 2] if levels[0] == 1 else []) + [3, 4, 5]  # the default names P3-P5 only
    first_slot = strides.WHOLE_BACKBONE_SLOTS - len(levels) - levels[0]
    return ", ".join(
        f"P{level}/{2**level} = {first_slot + level}" if with_strides else f"P{level} = {first_slot + level}"
        for level in shown
    )


def layer_line(layer, index, stride, previous_stride):
    f, n, module, args = layer
    if is_whole_backbone(module):
        note = "0-4: backbone maps, " + level_slots(module, args, with_strides=True)
    elif stride is not None and isinstance(f, int) and f >= 0:  # reads one map of a whole backbone (an adapter)
        note = f"{index}: reads P{stride.bit_length() - 1}/{stride}"
    elif stride is not None and previous_stride is not None and stride > previous_stride:
        note = f"{index}-P{stride.bit_length() - 1}/{stride}"
    else:
        note = str(index)
    return f"  - [{flow(f)}, {n}, {module}, {flow(args)}] # {note}"


def dump(model, header):
    """Model dict -> YAML text, comment lines of ``header`` first, layers numbered in comments."""
    lines = [f"# {line}".rstrip() for line in header]
    backbone_strides = slot_strides(model["backbone"])
    index = 0
    for key, value in model.items():
        if key in ("backbone", "head"):
            lines += ["", f"{key}:", "  # [from, repeats, module, args]"]
            for layer in value:
                stride = backbone_strides[index] if key == "backbone" else None
                previous = backbone_strides[index - 1] if key == "backbone" and index else 1
                lines.append(layer_line(layer, index, stride, previous))
                index += 5 if is_whole_backbone(layer[2]) else 1
        elif key == BACKBONE_SCALES:
            lines += [f"{key}: # bbpatch: the backbone each scale letter builds (layer 0 names the first)"]
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif isinstance(value, dict):
            lines += [f"{key}:"] + [f"  {k}: {flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {flow(value)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- shipped YAMLs


def read_template(kind, name):
    """A template's model dict and its title (the first comment line)."""
    text = (catalog.package_dir("bbpatch.templates") / kind / f"{name}.yaml").read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip()
    return yaml.safe_load(text), title


def shipped_yamls():
    """{file name: YAML text} of everything in ``yamls/``."""
    out = {}

    def add(name, text):
        assert name not in out, f"two shipped YAMLs named {name}"
        out[name] = text

    for head in HEADS:
        template, title = read_template("heads", head)
        for family, default in catalog.FAMILY_DEFAULTS.items():
            variants = backbone_scales(template, family)
            model = with_whole_backbone(template, default, variants)
            if variants:
                header = [f"{title} with a {family} backbone whose variant follows the scale letter:"]
                header += [f"  {scale}: {describe_backbone(name)}" for scale, name in variants.items()]
            else:
                header = [f"{title} with {describe_backbone(default)}"]
            add(f"{head}-{family}.yaml", dump(model, header + usage_lines(f"{head}-{family}", bool(variants))))
    for system, (head, blocks) in BLOCK_SYSTEMS.items():
        template, title = read_template("heads", head)
        backbone, backbone_title = read_template("backbones", blocks)
        model = swap_backbone(template, backbone["backbone"])
        add(f"{system}.yaml", dump(model, [f"{title} with {backbone_title}", *usage_lines(system)]))
    return out


def describe_backbone(name):
    entry = catalog.BACKBONES[name]
    return f"{name} (timm {entry.timm_name}, channels {', '.join(map(str, entry.channels))})"


def backbone_scales(template, family):
    """{scale letter: backbone name} for a family that scales, over the scales the head template has; else {}.

    A head with one scale (RT-DETR's 'l') keeps the family default: the seed systems' backbone.
    """
    variants, scales = catalog.FAMILY_SCALES.get(family, {}), template.get("scales") or {}
    return {scale: variants[scale] for scale in scales if scale in variants} if len(scales) > 1 else {}


def with_whole_backbone(model, name, variants, args=(), old_strides=None, old_channels=None):
    """``model`` with layer 0 the backbone ``name``; with ``variants``, their first one, and ``backbone_scales``
    (right after ``scales``) naming the variant of every scale.

    ``old_strides`` (by default the table's) are the replaced layers' strides; where the model reads a stride-2
    map, the backbone returns P1 too (out_levels from 1), or :class:`NoStride2Map` says it has none.
    ``old_channels`` (measured at the first scale): adapt channels, see :func:`channel_adapters`.
    """
    if old_strides is None:
        old_strides = strides.table_strides(model["backbone"][: context_start(model["backbone"])])
    levels = None
    if old_strides is not None and P1 in strides_read(model, old_strides):
        check_stride2_maps([name, *variants.values()])
        levels = LEVELS_FROM_P1
    layer = whole_backbone_layer(next(iter(variants.values()), name), args, levels)
    adapters, read_through = [], None
    if old_channels is not None:
        adapters, read_through = channel_adapters(model, layer, old_strides, old_channels)
    swapped = swap_backbone(model, [layer, *adapters], old_strides, read_through)
    if not variants:
        return swapped
    out = {}
    for key, value in swapped.items():
        out[key] = value
        if key == "scales":
            out[BACKBONE_SCALES] = dict(variants)
    return out


def stock_head_template(head):
    """Template text for a ``STOCK_HEADS`` head: the installed release's stock YAML with ``BACKBONE`` at layer 0."""
    stock_name, title = STOCK_HEADS[head]
    path, _ = find_base(stock_name)
    model = swap_backbone(yaml.safe_load(path.read_text(encoding="utf-8")), [[-1, 1, PLACEHOLDER, []]])
    header = [
        title,
        f"bbpatch head template: the head of ultralytics' {stock_name}, renumbered for a whole backbone at layer 0",
        "(BACKBONE: its maps fill layers 0-4, P3/8 = 2, P4/16 = 3, P5/32 = 4; the first layer after it is 5).",
        "Derived from the installed release by `python -m bbpatch.models.yamlgen --head-templates`: "
        "do not edit by hand.",
    ]
    return dump(model, header)


def write_head_templates():
    directory = catalog.package_dir("bbpatch.templates") / "heads"
    for head in STOCK_HEADS:
        (directory / f"{head}.yaml").write_text(stock_head_template(head), encoding="utf-8")
    return directory


def usage_lines(stem, scaled_backbone=False):
    version, _, rest = stem.partition("-")
    example = f"{version}n-{rest}.yaml" if version.startswith("yolo") else f"{stem}.yaml"
    rows = "a row of 'scales' and of 'backbone_scales'" if scaled_backbone else "a row of 'scales'"
    return [
        "Generated by bbpatch (python -m bbpatch.models.yamlgen) from its templates: edit those, not this file.",
        f"Load as {example!r}; the scale letter picks {rows}.",
    ]


def write_shipped_yamls(directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in shipped_yamls().items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


# ---------------------------------------------------------------- derived from stock ultralytics YAMLs


def find_base(base, tree=None):
    """(path, scale letter) of a stock model name ('yolo11n-seg.yaml') in ``tree``'s cfg/models, or a YAML path."""
    found = base_model.locate(base, tree)
    return found.path, found.scale


def backbone_strides(model, base, with_channels=False):
    """Strides of the layers a new backbone replaces: the table's where it knows every module, else measured
    (``with_channels``: always measured, and (strides, channels))."""
    layers = model["backbone"][: context_start(model["backbone"])]
    known = strides.table_strides(layers)
    if known is not None and not with_channels:
        return known
    tree = base.tree()
    scale = next(iter(model.get("scales") or {}), None)
    probe = {**model, "backbone": layers, **({"scale": scale} if scale else {})}
    measured = strides.measure_layers(tree.package, probe, base.path)
    return measured if with_channels else measured[0]


def derive(base, backbone, args=(), tree=None, adapt_channels=False):
    """YAML text of the model YAML ``base`` with its backbone replaced by ``backbone`` (layer 0).

    ``backbone`` is a catalog name, ``timm:<model>``, or a family (``fasternet``...): then the variant follows
    the scale letter as in the shipped YAMLs (a ``backbone_scales`` key). ``tree``: the ultralytics tree that
    resolves a stock name and measures layers the stride table does not know (see :mod:`bbpatch.models.base_model`).
    ``adapt_channels``: 1x1 Conv adapters give the head the stock backbone's channels (:func:`channel_adapters`).
    Every error is a ValueError, KeyError or TreeError naming the file; nothing is derived from a guess.
    """
    located = base_model.locate(base, tree)
    path, scale = located.path, located.scale
    stock = base_model.read_model(path)
    scales = stock.get("scales") or {}
    if isinstance(scales, dict) and scale in scales:  # ultralytics builds the first scale when the name has none
        stock["scales"] = {scale: scales[scale], **scales}
    variants = family_variants(stock, backbone, args)
    try:
        if adapt_channels:
            old_strides, old_channels = backbone_strides(stock, located, with_channels=True)
        else:
            old_strides, old_channels = backbone_strides(stock, located), None
        model = with_whole_backbone(stock, backbone, variants, args, old_strides, old_channels)
    except (ValueError, KeyError) as error:
        message = str(error.args[0]) if error.args else str(error)
        raise type(error)(message if message.startswith(str(path)) else f"{path}: {message}") from None
    if variants:
        source = f"a {backbone} backbone whose variant follows the scale letter (backbone_scales)"
    elif backbone.startswith("timm:"):
        source = backbone
    else:
        source = f"{backbone} (timm {catalog.lookup(backbone).timm_name})"
    _, _, module, layer_args = model["backbone"][0]
    header = [
        f"{path.name} with its backbone replaced by {source}; derived by `bbpatch yaml`.",
        f"Layer 0 is the backbone: its maps fill layers 0-4 ({level_slots(module, layer_args)}).",
    ]
    if adapt_channels:
        header.append("Layers 5 on are 1x1 Convs giving the head the stock backbone's channels (channel adapters).")
    if scale in scales:
        header.append(f"Scale {scale!r} comes first in 'scales': it is the default when the file name has none.")
    return dump(model, header)


def family_variants(stock, backbone, args):
    """``backbone_scales`` for a family name (``{}`` for a backbone name); KeyError for a base without scales."""
    if backbone not in catalog.FAMILY_SCALES:
        return {}
    variants = backbone_scales(stock, backbone)
    if not variants:
        raise KeyError(f"{backbone!r} is a family, and this model has fewer than two scales: name one backbone")
    if args and isinstance(args[0], str):
        raise ValueError(f"a checkpoint file fits one variant, not the {backbone} family: name one backbone")
    return variants


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--head-templates"]:
        print(f"wrote {len(STOCK_HEADS)} head templates to {write_head_templates()}")
        return
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: python -m bbpatch.models.yamlgen [--head-templates | FOLDER]  (default: bbpatch's yamls/)")
        return 0 if argv[0] in ("-h", "--help") else 2
    directory = write_shipped_yamls(argv[0] if argv else catalog.package_dir("bbpatch.yamls"))
    print(f"wrote {len(shipped_yamls())} model YAMLs to {directory}")


if __name__ == "__main__":
    sys.exit(main())
