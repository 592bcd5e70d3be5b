"""`bbpatch yaml`: backbone-swapped copies of stock ultralytics YAMLs, and `bbpatch list`."""

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from bbpatch import catalog, yamlgen
from bbpatch.cli_models import list_command, yaml_command

from helpers import run_json, run_py

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
        "import sys; from bbpatch.cli_models import yaml_command\n"
        f"yaml_command(['--base', 'yolo11n-seg.yaml', '--backbone', 'MobileNetV4ConvSmall', '-o', {str(output)!r}],"
        " standalone_mode=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'timm'))))"
    )
    result = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
    assert output.read_text() == yamlgen.derive("yolo11n-seg.yaml", "MobileNetV4ConvSmall")

    failed = CliRunner().invoke(yaml_command, ["--base", "yolov8n.yaml", "--backbone", "FasterNett"])
    assert failed.exit_code == 1 and "FasterNet" in failed.output


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
    assert failed.exit_code == 1 and "a checkpoint file fits one variant" in failed.output


def test_a_family_yaml_derived_for_obb_builds_each_scale_with_its_variant(patched_tree, tmp_path):
    """No shipped YAML has a YOLO11 OBB head: a derived one scales its backbone like the shipped ones."""
    text = yamlgen.derive("yolo11-obb.yaml", "fasternet")
    paths = {scale: tmp_path / f"yolo11{scale}-obb-fn.yaml" for scale in "ns"}  # the scale letter in the name
    for path in paths.values():
        path.write_text(text)
    code = "import json\nfrom ultralytics import YOLO\nPATHS = " + repr({s: str(p) for s, p in paths.items()})
    code += "\nprint(json.dumps({s: YOLO(p).model.model[0].type for s, p in PATHS.items()}))"
    assert run_json(patched_tree, code) == {"n": "FasterNetT0", "s": "FasterNetT1"}
