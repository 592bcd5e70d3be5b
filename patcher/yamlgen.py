"""Model YAMLs with a bbpatch backbone: the shipped ones (``yamls/``, from ``templates/heads/``) and ones
derived from any stock ultralytics YAML (``bbpatch yaml``).

Both are one operation, :func:`swap_backbone`: find which backbone layers the rest of the model reads at
strides 4, 8, 16 and 32, put the new backbone in their place and renumber every later ``from`` index. A
whole backbone is one layer filling indices 0-4 (P3 = 2, P4 = 3, P5 = 4); a layer-by-layer backbone keeps
its own numbering. Context layers that close a backbone (SPPF, C2PSA...) stay, right after the new one.

Strides are read statically from the layer arguments, so this module needs neither torch nor ultralytics
(only its YAML files). ``python -m bbpatch.yamlgen [DIR]`` regenerates ``yamls/``; ``python -m bbpatch.yamlgen
--head-templates`` regenerates the head templates of ``STOCK_HEADS`` from the installed release's stock YAMLs.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import yaml

from . import catalog

PLACEHOLDER = "BACKBONE"  # layer 0 of a head template
WHOLE_BACKBONE_STRIDES = (None, 4, 8, 16, 32)  # the recipe pads a backbone's 4 maps to 5 layer slots
PYRAMID_STRIDES = (4, 8, 16, 32)

# Where a layer's stride sits in its YAML args (before parse_model injects c1); absent means 1.
STRIDE_ARG = {
    "Conv": 2, "DWConv": 2, "GhostConv": 2, "RepConv": 2, "SCDown": 2, "Conv2": 2, "GhostBottleneck": 2,
    "conv_bn_hswish": 1, "MobileNet_Block": 3, "MobileOne": 2,
}  # fmt: skip
FIXED_STRIDE = {"Focus": 2, "ADown": 2, "AConv": 2, "HGStem": 4}
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


def _arg(args, index, default):
    return args[index] if len(args) > index else default


def downsampling(module, args):
    """How much a layer reduces the resolution, from its name and YAML args."""
    if module in FIXED_STRIDE:
        return FIXED_STRIDE[module]
    if module == "ResNetLayer":  # [c1, c2, s, is_first, n]: the first one is conv/2 + maxpool/2
        return 4 if _arg(args, 3, False) else _arg(args, 2, 1)
    if module == "nn.MaxPool2d":  # [k, s]: stride defaults to the kernel size
        return _arg(args, 1, None) or _arg(args, 0, 1)
    return _arg(args, STRIDE_ARG[module], 1) if module in STRIDE_ARG else 1


def is_whole_backbone(module):
    return module in catalog.BACKBONES or module in ("TimmBackbone", PLACEHOLDER)


def slot_strides(layers):
    """Stride of every layer index the layers occupy (a whole backbone occupies five)."""
    strides = []
    for f, _, module, args in layers:
        if is_whole_backbone(module):
            if strides:
                raise ValueError(f"whole backbone {module} must be layer 0")
            strides.extend(WHOLE_BACKBONE_STRIDES)
            continue
        source = f if isinstance(f, int) else f[0]
        base = strides[source] if strides else 1
        if base is None:
            raise ValueError(f"layer {len(strides)} ({module}) reads the empty slot of a whole backbone")
        strides.append(base * downsampling(module, args))
    return strides


def deepest_index_per_stride(strides):
    return {s: i for i, s in enumerate(strides) if s is not None}


def swap_backbone(model, new_backbone):
    """A copy of ``model`` whose backbone layers before its closing context layers are ``new_backbone``."""
    old = model["backbone"]
    keep = len(old)
    while keep > 0 and old[keep - 1][2] in CONTEXT_MODULES:
        keep -= 1
    if keep < len(old) and old[keep][2] in SAME_CHANNEL_MODULES:  # yolo11-cls: C2PSA straight after the backbone
        new_backbone = [*new_backbone, [-1, 1, "Conv", [old[keep][3][0], 1, 1]]]
    old_strides, new_strides = slot_strides(old[:keep]), slot_strides(new_backbone)
    new_index_of = deepest_index_per_stride(new_strides)
    replaced, shift = len(old_strides), len(new_strides) - len(old_strides)

    def new_index(old_index):
        if old_index >= replaced:
            return old_index + shift
        stride = old_strides[old_index]
        if stride not in new_index_of:
            raise ValueError(
                f"the model reads backbone layer {old_index} at stride {stride}; the new backbone has no such map"
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


def whole_backbone_layer(name, args=()):
    """Layer 0 for a catalog name, or ``timm:<model>`` for TimmBackbone."""
    if name.startswith("timm:"):
        return [-1, 1, "TimmBackbone", [name[len("timm:") :], *args]]
    catalog.lookup(name)
    return [-1, 1, name, list(args)]


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


def layer_line(layer, index, stride, previous_stride):
    f, n, module, args = layer
    if is_whole_backbone(module):
        note = "0-4: backbone maps, P3/8 = 2, P4/16 = 3, P5/32 = 4"
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


def with_whole_backbone(model, name, variants, args=()):
    """``model`` with layer 0 the backbone ``name``; with ``variants``, their first one, and ``backbone_scales``
    (right after ``scales``) naming the variant of every scale."""
    swapped = swap_backbone(model, [whole_backbone_layer(next(iter(variants.values()), name), args)])
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
        "Derived from the installed release by `python -m bbpatch.yamlgen --head-templates`: do not edit by hand.",
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
        "Generated by bbpatch (python -m bbpatch.yamlgen) from its templates: edit those, not this file.",
        f"Load as {example!r}; the scale letter picks {rows}.",
    ]


def write_shipped_yamls(directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in shipped_yamls().items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


# ---------------------------------------------------------------- derived from stock ultralytics YAMLs


def stock_models_dir():
    """ultralytics/cfg/models of the installed package, found without importing ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None:
        raise FileNotFoundError("ultralytics is not installed: pass --base as a YAML file path")
    return Path(spec.submodule_search_locations[0]) / "cfg" / "models"


def find_base(base):
    """Resolve 'yolo11n-seg.yaml' (ultralytics' naming: scale letter after the version) to (path, scale)."""
    match = re.search(r"yolo(e-)?[v]?\d+([nslmx])", Path(base).stem)
    scale = match.group(2) if match else ""
    if Path(base).is_file():
        return Path(base), scale
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(base).name)  # yolo11n-seg.yaml -> yolo11-seg.yaml
    for name in dict.fromkeys([Path(base).name, unified, unified.replace("u.yaml", ".yaml")]):
        found = sorted(stock_models_dir().rglob(name))
        if found:
            return found[0], scale
    raise FileNotFoundError(f"no ultralytics model YAML named {base!r} (looked in {stock_models_dir()})")


def derive(base, backbone, args=()):
    """YAML text of the stock model ``base`` with its backbone replaced by ``backbone`` (layer 0).

    ``backbone`` is a catalog name, ``timm:<model>``, or a family (``fasternet``...): then the variant follows
    the scale letter as in the shipped YAMLs (a ``backbone_scales`` key).
    """
    path, scale = find_base(base)
    stock = yaml.safe_load(path.read_text(encoding="utf-8"))
    scales = stock.get("scales") or {}
    if scale in scales:  # ultralytics builds the first scale when the file name has none
        stock["scales"] = {scale: scales[scale], **scales}
    variants = family_variants(stock, backbone, args)
    model = with_whole_backbone(stock, backbone, variants, args)
    if variants:
        source = f"a {backbone} backbone whose variant follows the scale letter (backbone_scales)"
    elif backbone.startswith("timm:"):
        source = backbone
    else:
        source = f"{backbone} (timm {catalog.lookup(backbone).timm_name})"
    header = [
        f"{path.name} with its backbone replaced by {source}; derived by `bbpatch yaml`.",
        "Layer 0 is the backbone: its maps fill layers 0-4 (P3 = 2, P4 = 3, P5 = 4).",
    ]
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
    directory = write_shipped_yamls(argv[0] if argv else catalog.package_dir("bbpatch.yamls"))
    print(f"wrote {len(shipped_yamls())} model YAMLs to {directory}")


if __name__ == "__main__":
    main()
