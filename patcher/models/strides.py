"""The output stride of every backbone layer of a model YAML: measured in the target tree, or from a table.

Measuring (:func:`measure`) builds the layers with the tree's own ``parse_model`` and runs them on two tiny
images in a subprocess (``bbpatch.models.layer_probe``), so a fork's own modules count as what they do. The table
(:func:`table_strides`) is a fast path for modules whose stride it knows; tests/test_yaml_derive.py measures
every stock YAML of the installed release that it covers and asserts both agree. A module it does not name is
always measured. A stride that is not sure (not a power of two, not the same at both sizes, not a map at all) is
a :class:`Unsure`: deriving refuses to wire a head to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bbpatch.models import catalog

# Where a layer's stride sits in its YAML args (before parse_model injects c1); absent means 1.
STRIDE_ARG = {
    "Conv": 2, "DWConv": 2, "GhostConv": 2, "RepConv": 2, "SCDown": 2, "Conv2": 2, "GhostBottleneck": 2,
    "conv_bn_hswish": 1, "MobileNet_Block": 3, "MobileOne": 2,
}  # fmt: skip
FIXED_STRIDE = {"Focus": 2, "ADown": 2, "AConv": 2, "HGStem": 4}
ARG_RULES = {"ResNetLayer", "nn.MaxPool2d"}  # stride from args by their own rule (see downsampling)
STRIDE_ONE = {
    "C1", "C2", "C2f", "C3", "C3x", "C3TR", "C3Ghost", "C3k2", "C2fAttn", "C2fCIB", "C2PSA", "C2fPSA", "A2C2f",
    "Bottleneck", "BottleneckCSP", "RepC3", "ELAN1", "RepNCSPELAN4", "HGBlock", "SPP", "SPPF", "SPPELAN", "PSA",
    "AIFI", "DWConvTranspose2d", "Concat", "nn.Identity",
}  # fmt: skip
WHOLE_BACKBONE_SLOTS = 5  # a whole backbone fills layer indices 0-4, P1 (or nothing) to P5
DEFAULT_LEVELS = (2, 3, 4, 5)  # what a whole backbone returns without out_levels (modules/timm_backbones.py)
PROBE_SIZES = (256, 384)  # both exact multiples of every stride up to 128; 1x3x256x256 costs little
PROBE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Unsure:
    """A layer whose stride the measurement could not pin down, and why."""

    layer: str  # 'layer 2 (nn.AvgPool2d)'
    why: str  # 'maps a 256x256 image to 21x21, not a whole stride'

    def __str__(self):
        return f"{self.layer} {self.why}"


class StrideError(ValueError):
    """The strides of a YAML's backbone layers cannot be measured: nothing was written."""


def _arg(args, index, default):
    return args[index] if len(args) > index else default


def in_table(module):
    return module in STRIDE_ARG or module in FIXED_STRIDE or module in ARG_RULES or module in STRIDE_ONE


def downsampling(module, args):
    """How much a layer the table knows reduces the resolution, from its name and YAML args."""
    if module in FIXED_STRIDE:
        return FIXED_STRIDE[module]
    if module == "ResNetLayer":  # [c1, c2, s, is_first, n]: the first one is conv/2 + maxpool/2
        return 4 if _arg(args, 3, False) else _arg(args, 2, 1)
    if module == "nn.MaxPool2d":  # [k, s]: stride defaults to the kernel size
        return _arg(args, 1, None) or _arg(args, 0, 1)
    return _arg(args, STRIDE_ARG[module], 1) if module in STRIDE_ARG else 1


def is_whole_backbone(module):
    return module in catalog.BACKBONES or module in ("TimmBackbone", "BACKBONE")


def whole_backbone_levels(module, args):
    """Pyramid levels a whole-backbone layer returns: its ``out_levels`` arg, else the default P2-P5."""
    index = 2 if module == "TimmBackbone" else 1  # [model_name, pretrained, out_levels] / [pretrained, out_levels]
    levels = _arg(args, index, None)  # None: what the model has; P3-P5 stay layers 2-4 either way
    return tuple(DEFAULT_LEVELS if levels is None else levels)


def whole_backbone_strides(module, args):
    levels = whole_backbone_levels(module, args)
    return [None] * (WHOLE_BACKBONE_SLOTS - len(levels)) + [2**level for level in levels]


def table_strides(layers, lenient=False):
    """Stride of every layer index the layers occupy (a whole backbone occupies five), from the table.

    None where a module is not in the table (``lenient``: count it as stride 1, for comments only).
    """
    strides = []
    for f, _, module, args in layers:
        if is_whole_backbone(module):
            if strides:
                raise ValueError(f"whole backbone {module} must be layer 0")
            strides.extend(whole_backbone_strides(module, args))
            continue
        if not in_table(module) and not lenient:
            return None
        source = f if isinstance(f, int) else f[0]
        base = strides[source] if strides else 1
        if base is None:
            raise ValueError(f"layer {len(strides)} ({module}) reads the empty slot of a whole backbone")
        strides.append(base * downsampling(module, args))
    return strides


def strides_from_maps(maps, layers):
    """Per layer: the stride both probe sizes agree on, or an :class:`Unsure` saying why not."""
    strides = []
    for index, (_, _, module, _) in enumerate(layers):
        seen = {(size, tuple(sizes[index]) if isinstance(sizes[index], list) else sizes[index]) for size, sizes in maps}
        strides.append(_one_stride(seen, f"layer {index} ({module})"))
    return strides


def _one_stride(seen, name):
    ratios = set()
    for size, shape in sorted(seen, key=str):
        if isinstance(shape, str):
            return Unsure(name, f"outputs {shape}")
        for side in shape[:2]:
            if side < 1 or size % side:
                return Unsure(name, f"maps a {size}x{size} image to {shape[0]}x{shape[1]}, not a whole stride")
            ratios.add(size // side)
    if len(ratios) > 1:
        return Unsure(name, f"has no single stride (measured {sorted(ratios)} at input sizes {PROBE_SIZES})")
    stride = ratios.pop()
    if stride & (stride - 1):
        return Unsure(name, f"has stride {stride}, not a power of two")
    return stride


def measure(package, model, yaml_file):
    """Strides of ``model``'s backbone layers, built and run in the ultralytics ``package`` (a subprocess)."""
    return measure_layers(package, model, yaml_file)[0]


def measure_layers(package, model, yaml_file):
    """(strides, output channels) of ``model``'s backbone layers (channels None where a layer gives no map)."""
    result = measure_all(package, [(model, yaml_file)], with_channels=True)[0]
    if isinstance(result, StrideError):
        raise result
    return result


def measure_all(package, models, with_channels=False):
    """:func:`measure` for many ``(model, yaml_file)`` in one subprocess: per model, strides or a StrideError
    (``with_channels``: (strides, channels), as :func:`measure_layers`)."""
    request = dict(package=str(package), models=[{**m, "head": []} for m, _ in models], sizes=list(PROBE_SIZES))
    root = Path(package).parent
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    script = (Path(__file__).parent / "layer_probe.py").read_text(encoding="utf-8")
    files = ", ".join(str(f) for _, f in models)
    try:
        data = json.dumps(request)
    except (TypeError, ValueError):
        raise StrideError(f"{files}: a value in it is not plain YAML data; cannot measure its layers") from None
    try:
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=data,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S * len(models),
        )
    except subprocess.TimeoutExpired:
        raise StrideError(f"{files}: measuring its layers in {package} took too long") from None
    answer = _answer(result.stdout)
    if answer is None or "error" in answer:
        last = answer["error"] if answer else (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise StrideError(f"{files}: measuring its layers in {package} failed: {last}")
    results = [_strides(a, m["backbone"], f, package) for a, (m, f) in zip(answer["answers"], models)]
    if with_channels:
        return [r if isinstance(r, StrideError) else (r, _channels(a)) for r, a in zip(results, answer["answers"])]
    return results


def _channels(answer):
    first = next(iter(answer["maps"].values()))
    return [shape[2] if isinstance(shape, list) else None for shape in first]


def _strides(answer, layers, yaml_file, package):
    if "error" in answer:
        where = "" if answer.get("layer") is None else _layer_name(layers, answer["layer"]) + ": "
        return StrideError(f"{yaml_file}: {where}{answer['error']} (measured in {package})")
    maps = [(int(size), sizes) for size, sizes in answer["maps"].items()]
    if any(len(sizes) != len(layers) for _, sizes in maps):
        return StrideError(f"{yaml_file}: the measurement in {package} lacks a map size for some layers")
    return strides_from_maps(maps, layers)


TIMM_REDUCTIONS = """
import json, sys, timm, torch
try:
    with torch.device("meta"):  # structure only: no memory, no weight init
        model = timm.create_model(sys.argv[1], features_only=True)
except Exception:
    model = timm.create_model(sys.argv[1], features_only=True)
print(json.dumps(model.feature_info.reduction()))
"""


def timm_reductions(model_name):
    """The strides of a timm model's ``features_only`` maps, from timm in a subprocess (no weights loaded)."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", TIMM_REDUCTIONS, model_name],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise StrideError(f"timm took over {PROBE_TIMEOUT_S} s to describe {model_name!r}") from None
    if result.returncode:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise StrideError(f"timm cannot build {model_name!r} as a features_only model: {last}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _layer_name(layers, index):
    return f"layer {index} ({layers[index][2]})" if 0 <= index < len(layers) else f"layer {index}"


def _answer(stdout):
    marker = "bbpatch-layer-maps: "  # layer_probe.MARKER, not imported: that file runs in the tree's Python
    lines = [line[len(marker) :] for line in stdout.splitlines() if line.startswith(marker)]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
