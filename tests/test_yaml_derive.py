"""`bbpatch yaml`: backbone-swapped copies of stock ultralytics YAMLs, and `bbpatch list`."""

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from recipe_trees import Backbone, Variant, make_recipe_tree

from bbpatch import api
from bbpatch.cli.models import list_command, yaml_command
from bbpatch.engine.tree import find_tree
from bbpatch.models import catalog, strides, yamlgen

from conftest import copy_package, installed_package, release_package
from helpers import run_cli, run_json, run_py, tree_bytes

# base -> the closing layers of its backbone that stay, right after the new backbone
V8, V11 = ["SPPF"], ["SPPF", "C2PSA"]
BASES = {
    "yolov8n.yaml": V8,
    "yolov8n-seg.yaml": V8,
    "yolov8n-pose.yaml": V8,
    "yolov8n-obb.yaml": V8,
    "yolov8n-cls.yaml": [],
    "yolo11n.yaml": V11,
    "yolo11n-seg.yaml": V11,
    "yolo11n-pose.yaml": V11,
    "yolo11n-obb.yaml": V11,
    "yolo11n-cls.yaml": ["Conv", "C2PSA"],  # C2PSA needs c1 == c2: a 1x1 Conv adapts the backbone's P5
    "rtdetr-l.yaml": [],
}


def derived(base, backbone="MobileNetV4ConvSmall"):
    return yaml.safe_load(yamlgen.derive(base, backbone))


def absolute_froms(model):
    rows = model["backbone"] + model["head"]
    first = 5 if yamlgen.is_whole_backbone(rows[0][2]) else 1
    for position, (f, *_rest) in enumerate(rows[1:], first):
        for x in [f] if isinstance(f, int) else f:
            yield position, position + x if x < 0 else x


@pytest.mark.parametrize("base", sorted(BASES))
def test_derived_yaml_reads_the_backbone_maps_at_their_new_indices(base):
    stock = yaml.safe_load(yamlgen.find_base(base)[0].read_text())
    model = derived(base)
    assert model["backbone"][0] == [-1, 1, "MobileNetV4ConvSmall", []]
    assert [row[2] for row in model["backbone"][1:]] == BASES[base]
    assert [row[2:] for row in model["head"]] == [row[2:] for row in stock["head"]]  # same head, renumbered

    reads = {target for _, target in absolute_froms(model) if target < 5}
    assert 4 in reads and reads <= {2, 3, 4}  # only P3, P4, P5 of the new backbone
    assert all(position > target for position, target in absolute_froms(model))  # every from looks back


def test_derived_scale_comes_first_and_unknown_names_are_explained():
    assert list(derived("yolo11s-seg.yaml")["scales"])[0] == "s"
    assert list(derived("yolo11-seg.yaml")["scales"])[0] == "n"
    with pytest.raises(KeyError, match="MobileNetV4ConvSmall"):
        yamlgen.derive("yolov8n.yaml", "MobileNetV4ConvSmal")
    with pytest.raises(ValueError, match="stride 64"):
        yamlgen.derive("yolov8n-p6.yaml", "MobileNetV4ConvSmall")  # P6 needs a stride-64 map


def test_timm_prefix_gives_a_timm_backbone_layer():
    model = derived("rtdetr-l.yaml", "timm:resnet18")
    assert model["backbone"] == [[-1, 1, "TimmBackbone", ["resnet18"]]]


def test_yaml_command_writes_the_file_without_importing_torch(tmp_path):
    output = tmp_path / "my.yaml"
    code = (
        "import sys; from bbpatch.cli.models import yaml_command\n"
        f"yaml_command(['--base', 'yolo11n-seg.yaml', '--backbone', 'MobileNetV4ConvSmall', '-o', {str(output)!r}],"
        " standalone_mode=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'timm'))))"
    )
    result = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
    assert output.read_text() == yamlgen.derive("yolo11n-seg.yaml", "MobileNetV4ConvSmall")

    failed = CliRunner().invoke(yaml_command, ["--base", "yolov8n.yaml", "--backbone", "FasterNett"])
    assert failed.exit_code == 2 and "FasterNet" in failed.output


def test_list_command_shows_names_sources_channels_and_parameters():
    result = CliRunner().invoke(list_command, ["--family", "mobilenetv4"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:-2]}
    assert set(rows) == {n for n, e in catalog.BACKBONES.items() if e.family == "mobilenetv4"}
    assert (
        "mobilenetv4_conv_small" in rows["MobileNetV4ConvSmall"] and "32, 64, 96, 960" in rows["MobileNetV4ConvSmall"]
    )
    assert rows["MobileNetV4ConvSmall"].rstrip().endswith("1.26M")  # timm features_only: 1,261,664
    assert CliRunner().invoke(list_command, ["--family", "nope"]).exit_code == 1


BUILD_DERIVED = """
import json, torch
from ultralytics import RTDETR, YOLO
torch.set_num_threads(1)
results = {}
for name, path in PATHS.items():
    model = (RTDETR if name.startswith("rtdetr") else YOLO)(path).model
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 256))
    stride = model.stride.tolist() if hasattr(model, "stride") else None
    first = out[0] if isinstance(out, (tuple, list)) else out
    shape = list(first.shape) if isinstance(first, torch.Tensor) else None
    results[name] = dict(stride=stride, shape=shape)
print(json.dumps(results))
"""


def test_derived_yamls_build_and_run_in_a_patched_tree(patched_tree, tmp_path):
    paths = {}
    for base in BASES:
        path = tmp_path / base.replace(".yaml", "-mnv4.yaml")  # keeps ultralytics' scale letter in the name
        path.write_text(yamlgen.derive(base, "MobileNetV4ConvSmall"))
        paths[base] = str(path)
    results = json.loads(run_py(patched_tree, BUILD_DERIVED.replace("PATHS", repr(paths))).strip().splitlines()[-1])
    for base, result in results.items():
        if base.endswith("-cls.yaml"):
            assert result["shape"] == [1, 1000], base  # class probabilities
        elif base.startswith("rtdetr"):
            assert result["stride"] == [32.0], base
        else:
            assert result["stride"] == [8.0, 16.0, 32.0], base
    assert set(results) == set(BASES)


def test_a_family_name_derives_a_yaml_whose_backbone_follows_the_scale_letter():
    model = derived("yolo11s-obb.yaml", "fasternet")
    assert list(model["scales"])[0] == "s" and model["backbone"][0] == [-1, 1, "FasterNetT1", []]
    assert model["backbone_scales"] == dict(
        s="FasterNetT1", n="FasterNetT0", m="FasterNetT2", l="FasterNetS", x="FasterNetM"
    )
    assert derived("yolo11n.yaml", "mobilenetv4")["backbone"][0][2] == "MobileNetV4ConvSmall_050"
    assert "backbone_scales" not in derived("yolo11n.yaml", "FasterNetT0")  # one name: one backbone at every scale
    with pytest.raises(KeyError, match="fewer than two scales"):
        yamlgen.derive("rtdetr-l.yaml", "fasternet")
    failed = CliRunner().invoke(
        yaml_command, ["--base", "yolo11n.yaml", "--backbone", "fasternet", "--pretrained", "w.pth"]
    )
    assert failed.exit_code == 2 and "a checkpoint file fits one variant" in failed.output


def test_a_family_yaml_derived_for_obb_builds_each_scale_with_its_variant(patched_tree, tmp_path):
    """No shipped YAML has a YOLO11 OBB head: a derived one scales its backbone like the shipped ones."""
    text = yamlgen.derive("yolo11-obb.yaml", "fasternet")
    paths = {scale: tmp_path / f"yolo11{scale}-obb-fn.yaml" for scale in "ns"}  # the scale letter in the name
    for path in paths.values():
        path.write_text(text)
    code = "import json\nfrom ultralytics import YOLO\nPATHS = " + repr({s: str(p) for s, p in paths.items()})
    code += "\nprint(json.dumps({s: YOLO(p).model.model[0].type for s, p in PATHS.items()}))"
    assert run_json(patched_tree, code) == {"n": "FasterNetT0", "s": "FasterNetT1"}


# ---------------------------------------------------------------- strides by measurement (issue 16, point 4)

FORK_MODULES = '''
"""Downsampling modules a research fork might add: in no bbpatch table (test fixture)."""
import torch
from torch import nn

from ultralytics.nn.modules.conv import Conv


class SepDown(nn.Module):
    """Depthwise-separable downsampling, YAML args [c2, s]: the stride is not where Conv keeps it."""

    def __init__(self, c1, c2, s=2):
        super().__init__()
        self.dw, self.pw = Conv(c1, c1, 3, s, g=c1), Conv(c1, c2, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class Stem4(nn.Module):
    """A stride-4 stem with no stride argument at all."""

    def __init__(self, c1, c2):
        super().__init__()
        self.conv = nn.Sequential(Conv(c1, c2 // 2, 3, 2), Conv(c2 // 2, c2, 3, 2))

    def forward(self, x):
        return self.conv(x)


class HaarPool(nn.Module):
    """Channel-keeping 2x2 averaging: no args, parse_model's fallback branch (c2 = ch[f])."""

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)


class ScaleFuse(nn.Module):
    """Like YOLOv13's HyperACE: P3 pooled, P4, P5 upsampled, concatenated, assuming the stock channel ratio
    (P3 = P4 = P5 / 2 = c1, c1 from the middle input): a head that does not take any backbone's channels."""

    def __init__(self, c1, c2):
        super().__init__()
        self.conv = Conv(4 * c1, c2, 1)

    def forward(self, x):
        p3, p4, p5 = x
        up = torch.nn.functional.interpolate(p5, scale_factor=2.0)
        return self.conv(torch.cat([torch.nn.functional.avg_pool2d(p3, 2), p4, up], 1))


class Broken(nn.Module):
    """Builds, then fails in forward (a measurement that cannot finish)."""

    def forward(self, x):
        raise RuntimeError("Broken needs a GPU kernel")
'''

# fork-like YAMLs: every downsampling module is one of FORK_MODULES; the heads read P1 (like Hyper-YOLO) or P2
FORK_P1 = """
nc: 4
scales:
  n: [0.33, 0.25, 1024]
  s: [0.33, 0.50, 1024]
backbone:
  - [-1, 1, SepDown, [64, 2]] # 0-P1/2
  - [-1, 1, SepDown, [128, 2]] # 1-P2/4
  - [-1, 2, C2f, [128, True]]
  - [-1, 1, HaarPool, []] # 3-P3/8
  - [-1, 2, C2f, [256, True]]
  - [-1, 1, SepDown, [512, 2]] # 5-P4/16
  - [-1, 2, C2f, [512, True]]
  - [-1, 1, SepDown, [1024, 2]] # 7-P5/32
  - [-1, 1, C2f, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]] # 9
head:
  - [0, 1, nn.AvgPool2d, [8, 8, 0]] # 10: P1 pooled to P4
  - [2, 1, nn.AvgPool2d, [4, 4, 0]] # 11: P2 pooled to P4
  - [4, 1, nn.AvgPool2d, [2, 2, 0]] # 12: P3 pooled to P4
  - [9, 1, nn.Upsample, [None, 2, "nearest"]] # 13
  - [[10, 11, 12, 6, 13], 1, Concat, [1]] # 14
  - [-1, 1, C2f, [512]] # 15 (P4)
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 1, C2f, [256]] # 18 (P3)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 15], 1, Concat, [1]]
  - [-1, 1, C2f, [512]] # 21 (P4)
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 9], 1, Concat, [1]]
  - [-1, 1, C2f, [1024]] # 24 (P5)
  - [[18, 21, 24], 1, Detect, [nc]]
"""
FORK_P2 = """
nc: 4
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Stem4, [128]] # 0-P2/4
  - [-1, 2, C2f, [128, True]] # 1
  - [-1, 1, SepDown, [256, 2]] # 2-P3/8
  - [-1, 2, C2f, [256, True]]
  - [-1, 1, SepDown, [512, 2]] # 4-P4/16
  - [-1, 2, C2f, [512, True]]
  - [-1, 1, HaarPool, []] # 6-P5/32
  - [-1, 1, C2f, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]] # 8
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 5], 1, Concat, [1]]
  - [-1, 1, C2f, [512]] # 11
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 3], 1, Concat, [1]]
  - [-1, 1, C2f, [256]] # 14 (P3)
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 1], 1, Concat, [1]]
  - [-1, 1, C2f, [128]] # 17 (P2)
  - [-1, 1, Conv, [128, 3, 2]]
  - [[-1, 14], 1, Concat, [1]]
  - [-1, 1, C2f, [256]] # 20 (P3)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 11], 1, Concat, [1]]
  - [-1, 1, C2f, [512]] # 23 (P4)
  - [-1, 1, SepDown, [512, 2]]
  - [[-1, 8], 1, Concat, [1]]
  - [-1, 1, C2f, [1024]] # 26 (P5)
  - [[17, 20, 23, 26], 1, Detect, [nc]]
"""

FORK_FUSE = """
nc: 4
scales:
  n: [0.33, 0.25, 1024]
  s: [0.33, 0.50, 1024]
  l: [1.00, 1.00, 512]
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, SepDown, [128, 2]] # 1-P2/4
  - [-1, 2, C2f, [128, True]]
  - [-1, 1, SepDown, [256, 2]] # 3-P3/8
  - [-1, 2, C2f, [256, True]] # 4
  - [-1, 1, SepDown, [256, 2]] # 5-P4/16
  - [-1, 2, C2f, [256, True]] # 6
  - [-1, 1, SepDown, [512, 2]] # 7-P5/32
  - [-1, 2, C2f, [512, True]] # 8
head:
  - [[4, 6, 8], 1, ScaleFuse, [256]] # 9 (P4)
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 1, C2f, [128]] # 12 (P3)
  - [-1, 1, Conv, [128, 3, 2]]
  - [[-1, 9], 1, Concat, [1]]
  - [-1, 1, C2f, [256]] # 15 (P4)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 8], 1, Concat, [1]]
  - [-1, 1, C2f, [512]] # 18 (P5)
  - [[12, 15, 18], 1, Detect, [nc]]
"""


def fork_like_tree(root):
    """A copy of the installed ultralytics with FORK_MODULES wired in as a fork does (tasks.py imports them,
    parse_model injects c1 for the ones with channel args), and the fork YAMLs under its cfg/models/fork/."""
    package = copy_package(installed_package(), root) / "ultralytics"
    (package / "nn" / "modules" / "forklike.py").write_text(FORK_MODULES)
    tasks = package / "nn" / "tasks.py"
    source = tasks.read_text()
    imports = "from ultralytics.nn.modules import (\n"
    modules = "    base_modules = frozenset(\n        {\n"
    assert imports in source and modules in source  # the fork-like edit fits this release
    fork_imports = "from ultralytics.nn.modules.forklike import Broken, HaarPool, ScaleFuse, SepDown, Stem4\n"
    source = source.replace(imports, fork_imports + imports, 1)
    source = source.replace(modules, modules + "            SepDown,\n            Stem4,\n", 1)
    branch = "        elif m is CBFuse:\n"  # a fork's own parse_model branch, as YOLOv13 has one for HyperACE
    assert branch in source
    fuse = "        elif m is ScaleFuse:\n            c2 = args[0]\n            args = [ch[f[1]], c2]\n"
    tasks.write_text(source.replace(branch, fuse + branch, 1))
    forks = package / "cfg" / "models" / "fork"
    forks.mkdir()
    for name, text in {"forkp1.yaml": FORK_P1, "forkp2.yaml": FORK_P2, "forkfuse.yaml": FORK_FUSE}.items():
        (forks / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def fork_tree(tmp_path_factory):
    """The fork-like tree, patched by bbpatch (a user's fork as it would be)."""
    root = fork_like_tree(tmp_path_factory.mktemp("fork"))
    api.apply(root)
    return root


HEAD_STRIDES = """
import json, torch
from ultralytics import YOLO
torch.set_num_threads(1)
SIZE = 256

def strides(value):  # what a layer is given: input size / map size, per tensor
    if isinstance(value, torch.Tensor):
        return [SIZE / value.shape[-2], SIZE / value.shape[-1]] if value.dim() == 4 else list(value.shape)
    return [strides(v) for v in value] if isinstance(value, (list, tuple)) else repr(value)

def layer_inputs(path, first):
    model = YOLO(path).model.eval()
    seen = []
    for m in list(model.model)[first:]:
        m.register_forward_pre_hook(lambda m, args: seen.append([m.type, strides(args[0])]))
    with torch.no_grad():
        model(torch.zeros(1, 3, SIZE, SIZE))
    return seen

print(json.dumps({name: [layer_inputs(*stock), layer_inputs(*new)] for name, (stock, new) in PAIRS.items()}))
"""


def head_strides(root, pairs):
    """{name: (stock layers' input strides, derived layers' input strides)} for the layers after the backbone."""
    return run_json(root, HEAD_STRIDES.replace("PAIRS", repr(pairs)))


def derived_pair(base_path, backbone, directory, tree=None):
    """(stock, derived) as (path, index of the first layer after the replaced ones) for HEAD_STRIDES."""
    stock = yaml.safe_load(base_path.read_text())
    new = directory / f"{base_path.stem}-{backbone.replace(':', '-')}.yaml"
    new.write_text(yamlgen.derive(str(base_path), backbone, tree=tree))
    return (str(base_path), yamlgen.context_start(stock["backbone"])), (str(new), 1)


STOCK_HEADS = ("yolov8n.yaml", "yolo11n.yaml", "yolo12n.yaml", "yolo26n.yaml", "yolov10n.yaml", "yolov8n-p2.yaml")


def test_derived_heads_see_the_strides_the_stock_heads_see(patched_tree, tmp_path):
    """Layer by layer, every layer after the backbone gets its inputs at the stock model's strides."""
    pairs = {}
    for base in STOCK_HEADS:
        path = tmp_path / base  # the scale letter in the name: ultralytics builds n
        path.write_bytes(yamlgen.find_base(base)[0].read_bytes())
        pairs[base] = derived_pair(path, "MobileNetV4ConvSmall", tmp_path)
    results = head_strides(patched_tree, pairs)
    for base, (stock, new) in results.items():
        assert len(stock) == len(new) > 10, base
        assert [s for _, s in new] == [s for _, s in stock], base
    p2_detect = results["yolov8n-p2.yaml"][1][-1]
    assert p2_detect[1] == [[4, 4], [8, 8], [16, 16], [32, 32]]  # a P2 head reads the backbone's stride-4 map


def test_fork_modules_in_no_table_are_measured_and_heads_reading_p1_and_p2_get_them(fork_tree, tmp_path):
    package = fork_tree / "ultralytics"
    forks = package / "cfg" / "models" / "fork"
    p1 = yaml.safe_load((forks / "forkp1.yaml").read_text())
    layers = p1["backbone"][: yamlgen.context_start(p1["backbone"])]
    assert strides.table_strides(layers) is None  # SepDown, HaarPool: no table knows them
    measured = strides.measure(package, {**p1, "backbone": layers}, "forkp1.yaml")
    assert measured == [2, 4, 4, 8, 8, 16, 16, 32, 32]
    assert yamlgen.slot_strides(layers) != measured  # what counting unknown modules as stride 1 would have wired

    derived = yaml.safe_load(yamlgen.derive(str(forks / "forkp1.yaml"), "MobileNetV4ConvSmall"))  # tree: its own
    assert derived["backbone"][0] == [-1, 1, "MobileNetV4ConvSmall", [False, [1, 2, 3, 4, 5]]]
    assert [row[0] for row in derived["head"][:5]] == [0, 1, 2, 5, [6, 7, 8, 3, 9]]  # P1, P2, P3, SPPF; P4 = 3
    by_name = yamlgen.derive("forkp1.yaml", "MobileNetV4ConvSmall", tree=str(fork_tree))  # --tree resolves names
    assert yaml.safe_load(by_name) == derived
    derived_p2 = yaml.safe_load(yamlgen.derive(str(forks / "forkp2.yaml"), "timm:resnet18", tree=str(fork_tree)))
    assert derived_p2["backbone"][0] == [-1, 1, "TimmBackbone", ["resnet18"]]  # P2-P5 only: the default levels

    pairs = {
        "p1-mobilenetv4": derived_pair(forks / "forkp1.yaml", "MobileNetV4ConvSmall", tmp_path),
        "p1-mobileone": derived_pair(forks / "forkp1.yaml", "mobileone", tmp_path),  # a family: n builds S0
        "p1-timm": derived_pair(forks / "forkp1.yaml", "timm:resnet18", tmp_path),
        "p2-fasternet": derived_pair(forks / "forkp2.yaml", "FasterNetT0", tmp_path),
    }
    results = head_strides(fork_tree, pairs)
    for name, (stock, new) in results.items():
        assert len(stock) == len(new) > 10, name
        assert [s for _, s in new] == [s for _, s in stock], name
    assert results["p1-timm"][1][5][1] == [[16, 16]] * 5  # Concat of P1/8, P2/4, P3/2 pooled, P4, P5 upsampled
    assert results["p2-fasternet"][1][-1][1] == [[4, 4], [8, 8], [16, 16], [32, 32]]


@pytest.mark.parametrize("release", ["installed", "8.0.200"])
def test_measured_strides_equal_the_table_on_every_stock_yaml_the_table_covers(release):
    """The table is a fast path only: on every stock YAML whose replaced layers it knows, it gives what the
    release measures (the installed one, and the oldest tested, whose parse_model is older). A YAML with a
    module it does not know is always measured."""
    tree = find_tree(installed_package() if release == "installed" else release_package(release))
    covered, others = [], []
    for path in sorted(tree.file("cfg/models").rglob("*.yaml")):
        model = yaml.safe_load(path.read_text())
        layers = model["backbone"][: yamlgen.context_start(model["backbone"])]
        scale = next(iter(model.get("scales") or {}), None)
        probe = ({**model, "backbone": layers, **({"scale": scale} if scale else {})}, path)
        (covered if strides.table_strides(layers) is not None else others).append(probe)
    measured = strides.measure_all(tree.package, covered)
    mismatches = {
        path.name: (strides.table_strides(model["backbone"]), result)
        for (model, path), result in zip(covered, measured)
        if strides.table_strides(model["backbone"]) != result
    }
    assert mismatches == {}
    if release == "installed":
        assert len(covered) >= 50 and {p.name for _, p in others} >= {"yolov9e.yaml", "yolov3-tiny.yaml"}
    else:
        assert len(covered) >= 15


def test_p1_channel_table_matches_timm_feature_info():
    import timm
    import torch

    for timm_name in catalog.TIMM_CHANNELS:
        with torch.device("meta"):
            info = timm.create_model(timm_name, features_only=True).feature_info
        reductions, channels = info.reduction(), info.channels()
        expected = channels[reductions.index(2)] if 2 in reductions else None
        assert catalog.TIMM_P1_CHANNELS.get(timm_name) == expected, timm_name


def yaml_cli(*args, cwd=None):
    return run_cli("yaml", *args, cwd=cwd)


def assert_refused(result, *words):
    """Exit 2, one line on stderr naming what is wrong, nothing on stdout, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and result.stdout == "", result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out.yaml"
    not_model = tmp_path / "notes.yaml"
    not_model.write_text("just: text\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("backbone: [[-1, 1, Conv\n")
    backwards = tmp_path / "backwards.yaml"
    backwards.write_text("backbone:\n  - [-1, 1, Conv, [64, 3, 2]]\n  - [3, 1, Conv, [64, 3, 2]]\nhead: []\n")
    cases = [
        (["--base", "yolov8n.yaml", "--backbone", "FasterNett"], ["FasterNet"]),
        (["--base", "yolo11n.yaml", "--backbone", "fasternet", "--pretrained", "w.pth"], ["fits one variant"]),
        (["--base", "yolov8n-p6.yaml", "--backbone", "MobileNetV4ConvSmall"], ["yolov8-p6.yaml", "stride 64"]),
        (["--base", "yolov99n.yaml", "--backbone", "FasterNet"], ["yolov99n.yaml"]),
        (["--base", str(tmp_path / "missing.yaml"), "--backbone", "FasterNet"], ["missing.yaml"]),
        (["--base", str(not_model), "--backbone", "FasterNet"], ["notes.yaml", "not a model YAML"]),
        (["--base", str(broken), "--backbone", "FasterNet"], ["broken.yaml", "not valid YAML"]),
        (["--base", str(backwards), "--backbone", "FasterNet"], ["backwards.yaml", "layer 1"]),
        (["--base", "yolov8n.yaml", "--backbone", "FasterNet", "--tree", str(tmp_path)], [str(tmp_path)]),
    ]
    for args, words in cases:
        assert_refused(yaml_cli(*args, "-o", str(out)), *words)
        assert not out.exists()
    base = tmp_path / "yolov8n.yaml"
    base.write_bytes(yamlgen.find_base("yolov8n.yaml")[0].read_bytes())
    before = base.read_bytes()
    assert_refused(yaml_cli("--base", str(base), "--backbone", "FasterNet", "-o", str(base)), "base YAML")
    assert base.read_bytes() == before
    ok = yaml_cli("--base", str(base), "--backbone", "FasterNet", "-o", str(out))
    assert ok.returncode == 0 and out.read_text() == yamlgen.derive(str(base), "FasterNet"), ok.stderr


BAD_FORK_HEADS = {  # (the layer the head reads, what it does): refused with a line naming the file and layer
    "broken.yaml": ("[-1, 1, Broken, []]", ["layer 2 (Broken)", "forward", "Broken needs a GPU kernel"]),
    "thirds.yaml": (
        "[-1, 1, nn.AvgPool2d, [3, 3]]",
        ["layer 2 (nn.AvgPool2d)", "not a whole stride", "which the model reads"],
    ),
    "unbuildable.yaml": ("[-1, 1, NoSuchModule, [64]]", ["layer 2 (NoSuchModule)", "parse_model cannot build"]),
}


def test_strides_that_cannot_be_measured_are_refused_naming_file_and_layer(fork_tree, tmp_path):
    for name, (layer, words) in BAD_FORK_HEADS.items():
        base = tmp_path / name
        base.write_text(
            "nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, SepDown, [32, 2]]\n"
            f"  - {layer}\n  - [-1, 1, SepDown, [64, 2]]\nhead:\n  - [[2, 3], 1, Concat, [1]]\n"
        )
        out = tmp_path / f"out-{name}"
        assert_refused(yaml_cli("--base", str(base), "--backbone", "MobileNetV4ConvSmall", "--tree", str(fork_tree),
                                "-o", str(out)), name, *words)  # fmt: skip
        assert not out.exists()
    p1_fork = fork_tree / "ultralytics" / "cfg" / "models" / "fork" / "forkp1.yaml"
    for backbone in ("FasterNet", "fasternet", "timm:convnext_atto"):  # no stride-2 map (in any variant)
        assert_refused(yaml_cli("--base", str(p1_fork), "--backbone", backbone), "forkp1.yaml", "stride-2 map (P1)")


def test_whole_backbones_return_p1_in_slot_0_with_out_levels_from_1():
    import torch

    from bbpatch.modules import timm_backbones

    backbone = timm_backbones.MobileNetV4ConvSmall(False, [1, 2, 3, 4, 5])  # as a derived YAML writes it
    maps = backbone(torch.zeros(1, 3, 64, 64))
    assert backbone.channels == [catalog.TIMM_P1_CHANNELS["mobilenetv4_conv_small"], 32, 64, 96, 960]
    assert [m.shape[1] for m in maps] == backbone.channels and [64 // m.shape[-1] for m in maps] == [2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="no map at stride 2"):
        timm_backbones.FasterNetT0(False, [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="suffix"):
        timm_backbones.MobileNetV4ConvSmall(False, [1, 3, 4, 5])


ADAPTED_BUILDS = """
import json, torch
from ultralytics import YOLO
out = {}
for name, path in PATHS.items():
    try:
        model = YOLO(path).model.eval()
        out[name] = [m.type for m in model.model[:8]]
    except Exception as error:
        out[name] = type(error).__name__ + ": " + str(error).splitlines()[0]
print(json.dumps(out))
"""


def test_adapt_channels_gives_a_head_that_assumes_stock_channels_those_channels(fork_tree, tmp_path):
    base = fork_tree / "ultralytics" / "cfg" / "models" / "fork" / "forkfuse.yaml"
    plain = yamlgen.derive(str(base), "MobileNetV4ConvSmall")
    adapted = yaml.safe_load(yamlgen.derive(str(base), "MobileNetV4ConvSmall", adapt_channels=True))
    assert adapted["backbone"] == [
        [-1, 1, "MobileNetV4ConvSmall", []],
        [2, 1, "Conv", [256, 1, 1]],  # P3, the channels of stock layer 4 at every scale
        [3, 1, "Conv", [256, 1, 1]],  # P4 (layer 6)
        [4, 1, "Conv", [512, 1, 1]],  # P5 (layer 8)
    ]
    assert adapted["head"][0][0] == [5, 6, 7] and adapted["head"][2][0] == [-1, 5]  # every read goes through one
    paths = {}
    for scale in "nsl":  # the adapters follow the scale as the stock layers do (l: max_channels 512)
        paths[f"adapted-{scale}"] = tmp_path / f"yolov8{scale}-forkfuse-adapted.yaml"
        paths[f"adapted-{scale}"].write_text(yaml.safe_dump(adapted))
    paths["plain"] = tmp_path / "yolov8n-forkfuse-plain.yaml"
    paths["plain"].write_text(plain)
    built = run_json(fork_tree, ADAPTED_BUILDS.replace("PATHS", repr({k: str(v) for k, v in paths.items()})))
    assert "channels" in built["plain"]  # wired right, but ScaleFuse gets MobileNetV4's channels
    for scale in "nsl":
        assert built[f"adapted-{scale}"][:4] == ["MobileNetV4ConvSmall", *["ultralytics.nn.modules.conv.Conv"] * 3]
    results = head_strides(fork_tree, {"fuse": ((str(base), 9), (str(paths["adapted-n"]), 4))})
    stock, new = results["fuse"]
    assert len(stock) == len(new) == 11 and [s for _, s in new] == [s for _, s in stock]
    pooled = tmp_path / "pooled.yaml"  # the head reads a layer whose channels are not its first arg
    pooled.write_text(
        "nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, SepDown, [32, 2]]\n  - [-1, 1, HaarPool, []]\n"
        "  - [-1, 1, SepDown, [64, 2]]\nhead:\n  - [[2, 3], 1, Concat, [1]]\n"
    )
    refused = yaml_cli("--base", str(pooled), "--backbone", "MobileNetV4ConvSmall", "--tree", str(fork_tree),
                       "--adapt-channels")  # fmt: skip
    assert_refused(refused, "pooled.yaml", "cannot adapt channels to layer 2 (HaarPool)")


# ---------------------------------------------------------------- a derived YAML always builds (issue 23)


def test_a_head_that_needs_the_stock_channels_gets_the_adapters_by_default(fork_tree, tmp_path):
    """forkfuse's ScaleFuse, like YOLOv13's HyperACE, builds only with the stock channel ratio: `bbpatch yaml` builds
    the plain derivation in the tree, sees it fail, and writes the adapted one, which builds."""
    base = fork_tree / "ultralytics" / "cfg" / "models" / "fork" / "forkfuse.yaml"
    out = tmp_path / "yolov8n-forkfuse-default.yaml"
    result = yaml_cli("--base", str(base), "--backbone", "MobileNetV4ConvSmall", "-o", str(out))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "does not build with MobileNetV4ConvSmall's channels" in notes[0]
    assert "channels" in notes[0] and "--no-adapt-channels" in notes[0]
    assert out.read_text() == yamlgen.derive(str(base), "MobileNetV4ConvSmall", adapt_channels=True)
    built = run_json(fork_tree, ADAPTED_BUILDS.replace("PATHS", repr({"default": str(out)})))
    assert built["default"][:4] == ["MobileNetV4ConvSmall", *["ultralytics.nn.modules.conv.Conv"] * 3]

    refused_out = tmp_path / "refused.yaml"
    refused = yaml_cli("--base", str(base), "--backbone", "MobileNetV4ConvSmall", "--no-adapt-channels",
                       "-o", str(refused_out))  # fmt: skip
    assert_refused(refused, "forkfuse.yaml", "does not build", "channels", "--adapt-channels")
    assert not refused_out.exists()

    p1 = base.with_name("forkp1.yaml")  # a head that takes any channels: no adapters, nothing to note
    plain = yaml_cli("--base", str(p1), "--backbone", "MobileNetV4ConvSmall")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == yamlgen.derive(str(p1), "MobileNetV4ConvSmall") and "note:" not in plain.stderr


def test_a_tree_not_patched_on_disk_builds_the_check_in_memory_and_stays_as_it_was(tmp_path):
    root = fork_like_tree(tmp_path / "unpatched")
    before = tree_bytes(root)
    base = root / "ultralytics" / "cfg" / "models" / "fork" / "forkfuse.yaml"
    result = yaml_cli("--base", str(base), "--backbone", "FasterNetT0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == yamlgen.derive(str(base), "FasterNetT0", adapt_channels=True)
    assert tree_bytes(root) == before  # bbpatch's import hook patched it for the check's process only


BROKEN_HEAD = """
nc: 2
backbone:
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, Conv, [64, 3, 2]]
head:
  - [2, 1, Broken, []]
  - [[-1], 1, Detect, [nc]]
"""


def test_a_yaml_that_does_not_build_even_with_adapters_is_refused_and_not_written(fork_tree, tmp_path):
    base = tmp_path / "brokenhead.yaml"
    base.write_text(BROKEN_HEAD)
    out = tmp_path / "out.yaml"
    for option in ([], ["--adapt-channels"]):
        result = yaml_cli("--base", str(base), "--backbone", "MobileNetV4ConvSmall", "--tree", str(fork_tree),
                          "-o", str(out), *option)  # fmt: skip
        assert_refused(result, "brokenhead.yaml", "does not build", "Broken needs a GPU kernel")
        assert not out.exists()
    assert yaml.safe_load(yamlgen.derive(str(base), "MobileNetV4ConvSmall"))  # derivable: only the build fails


def test_on_an_adopted_tree_the_yaml_says_when_a_name_builds_the_users_class(tmp_path):
    """A recipe tree with its own FasterNet: a derived YAML is the user's, so FasterNet builds their class; the
    command says so, and names the TimmBackbone that builds bbpatch's. A name only bbpatch has gets no note."""
    root = copy_package(release_package("8.4.190"), tmp_path / "tree")
    make_recipe_tree(root / "ultralytics", Variant(backbones=(Backbone("FasterNet"),)), root / "models")
    assert api.adopt(root).state == "adopted"
    users = yaml_cli("--tree", str(root), "--base", "yolov8n.yaml", "--backbone", "FasterNet")
    assert users.returncode == 0, users.stderr
    assert users.stdout == yamlgen.derive("yolov8n.yaml", "FasterNet", tree=str(root))
    [note] = [line for line in users.stderr.splitlines() if line.startswith("note: ")]
    assert "ultralytics.nn.Addmodules.fasternet.FasterNet" in note and "not bbpatch's" in note
    assert f"timm:{catalog.lookup('FasterNet').timm_name}" in note
    ours = yaml_cli("--tree", str(root), "--base", "yolov8n.yaml", "--backbone", "FasterNetT0")
    assert ours.returncode == 0 and "note:" not in ours.stderr, ours.stderr


def test_the_build_checks_the_derived_text_not_a_stock_yaml_of_a_similar_name(fork_tree, tmp_path):
    """ultralytics reads `yolov8n.yaml` as `yolov8.yaml`, which the tree has: the check must build the derived text
    (here one whose head needs the stock channels, refused without adapters), not the stock model."""
    base = tmp_path / "x1l" / "yolov8n.yaml"  # a scale letter in the folder too
    base.parent.mkdir()
    base.write_text((fork_tree / "ultralytics" / "cfg" / "models" / "fork" / "forkfuse.yaml").read_text())
    refused = yaml_cli("--base", str(base), "--backbone", "MobileNetV4ConvSmall", "--tree", str(fork_tree),
                       "--no-adapt-channels")  # fmt: skip
    assert_refused(refused, "yolov8n.yaml", "does not build", "--adapt-channels")
