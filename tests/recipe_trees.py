"""Trees patched by hand with the blog recipe, made the way its readers make them (../shared/seeds/001, 002 steps).

Each step is a text edit of a real release's tasks.py / torch_utils.py, as a reader pastes it; the backbone files
compute their channels with a 640x640 forward in ``__init__`` (seed 001's ``self.width_list = [i.size(1) for i in
self.forward(torch.randn(1, 3, 640, 640))]``). A ``Variant`` picks among the spellings found in the wild.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

BACKBONE_FILE = """
import torch
import torch.nn as nn

__all__ = {names!r}


def conv(c1, c2, s):
    return nn.Sequential(nn.Conv2d(c1, c2, 3, s, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU())


class {cls}(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        self.stem = conv(3, widths[0], 2)
        self.stages = nn.ModuleList(conv(a, b, 2) for a, b in zip([widths[0], *widths[:-1]], widths))
        self.{attr} = [i.size(1) for i in self.forward(torch.randn(1, 3, 640, 640))]

    def forward(self, x):
        x = self.stem(x)
        results = []
        for stage in self.stages:
            x = stage(x)
            results.append(x)
        return results
"""

NECK_FILE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Low_FAM", "conv_bn_hswish"]


class conv_bn_hswish(nn.Module):  # noqa: N801  (named like one of bbpatch's blocks: the user's must win)
    def __init__(self, c):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.Hardswish()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Low_FAM(nn.Module):
    """GOLD-YOLO's low-level gather: every input pooled to the last one's size, concatenated."""

    def forward(self, x):
        size = x[-1].shape[2:]
        return torch.cat([F.adaptive_avg_pool2d(t, size) for t in x], 1)
'''

SPLIT_FILE = '''
import torch.nn as nn

__all__ = ["SplitMaps", "PickMap"]


class SplitMaps(nn.Module):
    """GOLD-YOLO-like: one 1x1 conv, its channels split into a list of maps (a list c2 that is no backbone)."""

    def __init__(self, c1, c2s):
        super().__init__()
        self.c2s = c2s
        self.conv = nn.Conv2d(c1, sum(c2s), 1)

    def forward(self, x):
        return list(self.conv(x).split(self.c2s, 1))


class PickMap(nn.Module):
    def __init__(self, index):
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[self.index]
'''

COLUMN_YAML = """# the column's model: a recipe backbone, YOLOv9's CBLinear/CBFuse (two_backbone), a split (goldyolo)
nc: 4
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, {backbone}, [{args}]]  # 0-4
  - [-1, 1, SPPF, [256, 5]]  # 5
head:
  - [-1, 1, Conv, [128, 1, 1]]  # 6
  - [2, 1, CBLinear, [[16, 32]]]  # 7 two_backbone
  - [[7, 6], 1, CBFuse, [[1]]]  # 8
  - [-1, 1, SplitMaps, [[64, 64]]]  # 9 goldyolo
  - [9, 1, PickMap, [1]]  # 10
  - [[-1, 5], 1, Concat, [1]]  # 11
  - [-1, 1, C2f, [128]]  # 12
  - [[2, 3, 12], 1, Detect, [nc]]  # 13
"""

COLUMN_STOCK_YAML = """# no recipe backbone: probed at the recipe's 640; the split's bias makes BatchNorm see the size
nc: 4
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]  # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]]  # 1-P2/4
  - [-1, 1, Conv, [256, 3, 2]]  # 2-P3/8
  - [-1, 1, Conv, [512, 3, 2]]  # 3-P4/16
  - [-1, 1, Conv, [1024, 3, 2]]  # 4-P5/32
head:
  - [-1, 1, SplitMaps, [[128, 128]]]  # 5 goldyolo
  - [5, 1, PickMap, [0]]  # 6
  - [-1, 1, Conv, [256, 3, 1]]  # 7
  - [[2, 3, 7], 1, Detect, [nc]]  # 8
"""

COLUMN_BRANCHES = """\
{i}elif m is CBLinear:
{i}    two_backbone = True
{i}    c2 = args[0]
{i}    c1 = ch[f]
{i}    args = [c1, c2, *args[1:]]
{i}elif m is CBFuse:
{i}    c2 = ch[f[-1]]
{i}elif m is SplitMaps:
{i}    goldyolo = True
{i}    c2 = [make_divisible(min(a, max_channels) * width, 8) for a in args[0]]
{i}    args = [ch[f], c2]
{i}elif m is PickMap:
{i}    c2 = ch[f][args[0]]
"""

USER_YAML = """# the user's own model, written for the recipe's numbering (backbone maps 0..4)
nc: 4
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, {backbone}, [{args}]]  # 0-4
  - [-1, 1, SPPF, [256, 5]]  # 5
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]  # 6
  - [[-1, 3], 1, Concat, [1]]  # 7
  - [-1, 1, C2f, [128]]  # 8
  - [[2, 3, 8], 1, Low_FAM, []]  # 9 GOLD-YOLO neck
  - [-1, 1, Conv, [128, 3, 2]]  # 10
  - [[-1, 5], 1, Concat, [1]]  # 11
  - [-1, 1, C2f, [128]]  # 12
  - [-1, 1, conv_bn_hswish, [32]]  # 13 the user's block, named like bbpatch's
  - [[2, 8, 13], 1, Detect, [nc]]  # 14
"""

RTDETR_YAML = """# the user's RT-DETR (seed 001 is an RT-DETR recipe), small enough for a CPU test
nc: 4
scales:
  l: [1.00, 1.00, 1024]
backbone:
  - [-1, 1, {backbone}, [{args}]]  # 0-4
head:
  - [-1, 1, Conv, [64, 1, 1, None, 1, 1, False]]  # 5 input_proj P5
  - [-1, 1, AIFI, [128, 2]]  # 6
  - [-1, 1, Conv, [64, 1, 1]]  # 7 Y5
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]  # 8
  - [3, 1, Conv, [64, 1, 1, None, 1, 1, False]]  # 9 input_proj P4
  - [[-2, -1], 1, Concat, [1]]  # 10
  - [-1, 1, RepC3, [64]]  # 11 X4
  - [-1, 1, Conv, [64, 3, 2]]  # 12
  - [[-1, 7], 1, Concat, [1]]  # 13
  - [-1, 1, RepC3, [64]]  # 14 F5
  - [[11, 14], 1, RTDETRDecoder, [nc, 64, 30, 2, 2, 1]]  # 15
"""

NECK_ONLY_YAML = """# the user's own model: a stock backbone, their GOLD-YOLO-like neck module
nc: 4
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]  # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]]  # 1-P2/4
  - [-1, 1, Conv, [256, 3, 2]]  # 2-P3/8
  - [-1, 1, Conv, [512, 3, 2]]  # 3-P4/16
  - [-1, 1, Conv, [1024, 3, 2]]  # 4-P5/32
head:
  - [[2, 3, 4], 1, Low_FAM, []]  # 5
  - [-1, 1, Conv, [256, 1, 1]]  # 6
  - [[2, 3, 6], 1, Detect, [nc]]  # 7
"""

RECIPE_FORWARD = """\
{i}if {test}:
{i}    x = m(x)
{i}    if len(x) != 5:  # 0 - 5
{i}        x.insert(0, None)
{i}    for index, i in enumerate(x):
{i}        if index in self.save:
{i}            y.append(i)
{i}        else:
{i}            y.append(None)
{i}    x = x[-1]  # the last map goes on to the next layer
{i}else:
{i}    {run}
{i}    {save}
"""

RECIPE_CH = """\
{i}if {test}:
{i}    ch.extend(c2)
{i}    if len(c2) != 5:
{i}        ch.insert(0, 0)
{i}else:
{i}    ch.append(c2)
"""

RANGE_PAD_CH = """\
{i}if {test}:
{i}    ch.extend(c2)
{i}    for _ in range(5 - len(ch)):
{i}        ch.insert(0, 0)
{i}else:
{i}    ch.append(c2)
"""


@dataclass(frozen=True)
class Backbone:
    cls: str
    attr: str = "width_list"  # or "channel" (seed 000)
    with_args: bool = True  # m = m(*args), or m = m() (seed 002)
    yaml_args: str = ""  # what the user's YAML passes
    factory: str = ""  # the name YAMLs and the branch use is a function returning the class (public trees do)

    @property
    def name(self) -> str:
        return self.factory or self.cls


@dataclass(frozen=True)
class Variant:
    backbones: tuple = (Backbone("FasterNet"), Backbone("MyNet"))
    star_import: bool = True  # nn/Addmodules/__init__.py star-imports; else nn/backbone/ imported by name
    import_after: bool = True  # the Addmodules import after the nn.modules import, else before it
    dispatch: str = "set"  # set / tuple / is (one branch per name)
    flag: str = "backbone"
    forward_test: str = "hasattr(m, 'backbone')"
    class_np: bool = False  # seed 001's pasted tail: m.np instead of m_.np
    probe_640: bool = True
    flops_edit: bool = True
    rtdetr: bool = False  # the user also has an RT-DETR YAML (its predict loop carries the recipe's forward edit)
    column: bool = False  # the blog column's later tasks.py: goldyolo and two_backbone beside the backbone flag
    range_pad: bool = False  # ch padded with 'for _ in range(5 - len(ch)): ch.insert(0, 0)'
    relative: bool = False  # tasks.py imports 'from .modules import (...)' and 'from .Addmodules import *'
    # with column: the other family's tail 'isinstance(c2, list) and m not in {CBLinear, SplitMaps}', which sets the
    # flag itself (the branches set none)
    exclude: bool = False
    extra: dict = field(default_factory=dict)


def _replace(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


def _sub(text: str, pattern: str, repl, count: int = 1) -> str:
    new, done = re.subn(pattern, repl, text, count=count, flags=re.M)
    assert done, pattern
    return new


def write_modules(package: Path, variant: Variant) -> None:
    folder = package / "nn" / ("Addmodules" if variant.star_import else "backbone")
    folder.mkdir(exist_ok=True)
    files = {}
    for backbone in variant.backbones:
        source = BACKBONE_FILE.format(names=[backbone.name], cls=backbone.cls, attr=backbone.attr)
        if backbone.factory:
            source += f"\n\ndef {backbone.factory}(*args):\n    return {backbone.cls}(*args)\n"
        files[backbone.cls.lower()] = source
    files["goldyolo"] = NECK_FILE
    if variant.column:
        files["splitmaps"] = SPLIT_FILE
    for name, source in files.items():
        (folder / f"{name}.py").write_text(source.lstrip(), "utf-8")
    init = "".join(f"from .{name} import *\n" for name in files) if variant.star_import else ""
    (folder / "__init__.py").write_text(init, "utf-8")


def _imports(variant: Variant) -> str:
    if variant.star_import:
        return "from .Addmodules import *\n" if variant.relative else "from ultralytics.nn.Addmodules import *\n"
    modules = "".join(f"from ultralytics.nn.backbone.{b.cls.lower()} import {b.name}\n" for b in variant.backbones)
    return modules + "from ultralytics.nn.backbone.goldyolo import Low_FAM, conv_bn_hswish\n"


def _branches(variant: Variant, indent: str) -> str:
    def body(backbones):
        b = backbones[0]
        call = "m(*args)" if b.with_args else "m()"
        flag = "" if variant.exclude else f"{indent}    {variant.flag} = True\n"  # the other family sets it below
        return f"{indent}    m = {call}\n{indent}    c2 = m.{b.attr}  # returns the channel list\n{flag}"

    groups: dict = {}
    for b in variant.backbones:
        groups.setdefault((b.attr, b.with_args), []).append(b)
    text = ""
    for backbones in groups.values():
        names = [b.name for b in backbones]
        if variant.dispatch == "is":
            for b in backbones:
                text += f"{indent}elif m is {b.name}:\n" + body([b])
            continue
        listed = "{" + ", ".join(names) + "}" if variant.dispatch == "set" else "(" + ", ".join(names) + ",)"
        text += f"{indent}elif m in {listed}:\n" + body(backbones)
    return text


def patch_tasks(text: str, variant: Variant) -> str:
    if variant.relative:  # the layout some forks have
        text = _replace(text, "from ultralytics.nn.modules import (", "from .modules import (")
    # step 3: import everything from the package
    modules_import = re.search(r"^from (?:ultralytics\.nn|)\.modules import \([^)]*\)\n", text, re.M)
    at = modules_import.end() if variant.import_after else modules_import.start()
    text = text[:at] + _imports(variant) + text[at:]
    final = re.search(r"^([ \t]*)else:\n\s*c2 = ch\[f\]\n", text, re.M)
    indent = final.group(1)
    gold = f"{indent}elif m in (Low_FAM,):\n{indent}    c2 = sum(ch[x] for x in f)\n"
    if variant.column:  # the column's own branches: a flag set, no layer built (stock CBLinear/CBFuse replaced)
        text = _sub(text, r"^[ \t]*elif m is CBLinear:\n(?:[ \t]+.*\n)*?(?=[ \t]*elif m is CBFuse)", "")
        text = _sub(text, r"^[ \t]*elif m is CBFuse:\n[ \t]+c2 = ch\[f\[-1\]\]\n", "")
        final = re.search(r"^([ \t]*)else:\n\s*c2 = ch\[f\]\n", text, re.M)
        branches = COLUMN_BRANCHES.format(i=indent)
        if variant.exclude:
            branches = "".join(line for line in branches.splitlines(True) if not line.endswith("= True\n"))
        gold += branches
    text = text[: final.start()] + gold + text[final.start() :]
    if not variant.backbones:  # a reader who added only modules (steps 1-3) and a branch of their own
        return text
    # step 4: the two lines
    text = _sub(
        text,
        r"^([ \t]*)(for i, \(f, n, m, args\) in enumerate\(d\[.backbone.\] \+ d\[.head.\]\):.*\n)",
        lambda g: f"{g[1]}{variant.flag} = False\n{g[1]}{g[2]}{g[1]}    t = m\n",
    )
    if variant.column and not variant.exclude:
        text = _replace(text, f"{variant.flag} = False\n", f"{variant.flag} = False\n{indent[:-4]}goldyolo = False\n"
                        f"{indent[:-4]}two_backbone = False\n")
    # step 5: the backbone branch, after the user's own GOLD-YOLO branch, before the final else
    final = re.search(r"^([ \t]*)else:\n\s*c2 = ch\[f\]\n", text, re.M)
    text = text[: final.start()] + _branches(variant, indent) + text[final.start() :]
    # step 6: the loop tail
    build = re.search(r"^([ \t]*)(m_ = (?:torch\.)?nn\.Sequential\(.*\n)", text, re.M)
    kind = re.search(r"^([ \t]*)(t = str\(m\)\[8:-2\].*\n)", text, re.M)
    i = build.group(1)
    test = "isinstance(c2, list) and not goldyolo and not two_backbone" if variant.column else "isinstance(c2, list)"
    flag_set = ""
    if variant.exclude:
        test, flag_set = "isinstance(c2, list) and m not in {CBLinear, SplitMaps}", f"{i}    {variant.flag} = True\n"
    kept = f"{i}if {test}:\n{flag_set}{i}    m_ = m\n{i}    m_.backbone = True\n"
    tail = f"{kept}{i}else:\n{i}    {build[2]}{i}    {kind[2]}"
    text = text[: kind.start()] + text[kind.end() :]
    text = text[: build.start()] + tail + text[build.end() :]
    if variant.class_np:  # seed 001 pasted an old tail: m.np (releases before 8.3.50 have it themselves)
        text = text.replace("m_.np = sum(", "m.np = sum(", 1)
    flag = variant.flag
    text = _replace(text, "m_.i, m_.f, m_.type = i, f, t", f"m_.i, m_.f, m_.type = i + 4 if {flag} else i, f, t")
    text = _replace(text, "x % i for x in", f"x % (i + 4 if {flag} else i) for x in")
    pad = RANGE_PAD_CH if variant.range_pad else RECIPE_CH
    text = _sub(text, r"^([ \t]*)ch\.append\(c2\)\n", lambda g: pad.format(i=g[1], test=test))
    # step 7: every forward loop of the same shape (_predict_once, RT-DETR's predict ...)
    pair = re.compile(r"^( +)(x = m\(x\)  # run)\n\1(y\.append\(x if m\.i in self\.save else None\).*)\n", re.M)
    text = pair.sub(lambda g: RECIPE_FORWARD.format(i=g[1], test=variant.forward_test, run=g[2], save=g[3]), text)
    # step 8: the stride probe
    if variant.probe_640:
        text = _sub(text, r"^([ \t]*)s = 256(.*)$", r"\1s = 640\2")
    return text


def patch_torch_utils(text: str, variant: Variant) -> str:
    """Seed 001 4.9: get_flops profiles a 640 image; the reader keeps upstream's line as a comment above."""
    if not variant.flops_edit or not variant.backbones:
        return text
    return _sub(text, r"^([ \t]*)(stride = max\(int\(model\.stride\.max\(\)\), 32\).*)$", r"\1# \2\n\1stride = 640")


def make_recipe_tree(package: Path, variant: Variant, yamls: Path) -> list[Path]:
    """Patch the release copy at ``package`` by the recipe; write the user's YAMLs into ``yamls``; return them."""
    write_modules(package, variant)
    tasks = package / "nn" / "tasks.py"
    tasks.write_text(patch_tasks(tasks.read_text("utf-8"), variant), "utf-8")
    utils = next(p for p in (package / "utils/torch_utils.py", package / "yolo/utils/torch_utils.py") if p.exists())
    utils.write_text(patch_torch_utils(utils.read_text("utf-8"), variant), "utf-8")
    yamls.mkdir(parents=True, exist_ok=True)
    written = []
    for backbone in variant.backbones:
        path = yamls / f"yolov8-{backbone.name.lower()}.yaml"
        path.write_text(textwrap.dedent(USER_YAML.format(backbone=backbone.name, args=backbone.yaml_args)), "utf-8")
        written.append(path)
    if variant.column and variant.backbones:
        first = variant.backbones[-1]
        path = yamls / f"yolov9-column-{first.name.lower()}.yaml"
        path.write_text(COLUMN_YAML.format(backbone=first.name, args=first.yaml_args), "utf-8")
        written.append(path)
        path = yamls / "yolov9-column-stock.yaml"
        path.write_text(COLUMN_STOCK_YAML, "utf-8")
        written.append(path)
    if variant.rtdetr and variant.backbones:
        first = variant.backbones[0]
        path = yamls / f"rtdetr-{first.name.lower()}.yaml"
        path.write_text(RTDETR_YAML.format(backbone=first.name, args=first.yaml_args), "utf-8")
        written.append(path)
    if not variant.backbones:
        path = yamls / "yolov8-lowfam.yaml"
        path.write_text(NECK_ONLY_YAML, "utf-8")
        written.append(path)
    return written
