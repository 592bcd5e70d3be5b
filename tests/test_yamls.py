"""The shipped model YAMLs: generated from the templates, laid out like the seed recipes, and buildable."""

import json

import pytest
import yaml

from bbpatch import yamlgen

from helpers import run_py

SHIPPED = yamlgen.shipped_yamls()
YAMLS_DIR = yamlgen.catalog.package_dir("bbpatch.yamls")


def layers(name):
    model = yaml.safe_load(SHIPPED[name])
    return model["backbone"] + model["head"]


def test_committed_yamls_equal_generator_output():
    committed = {p.name: p.read_text(encoding="utf-8") for p in YAMLS_DIR.glob("*.yaml")}
    assert committed == SHIPPED, "run `python -m bbpatch.yamlgen` and commit yamls/"


def test_one_yaml_per_family_default_and_head_plus_the_block_systems():
    families = yamlgen.catalog.FAMILY_DEFAULTS
    expected = {f"{head}-{family}.yaml" for head in yamlgen.HEADS for family in families}
    expected |= {f"{system}.yaml" for system in yamlgen.BLOCK_SYSTEMS}
    assert set(SHIPPED) == expected and len(SHIPPED) == 8 * 6 + 3


def test_yolov8_mobilenetv4_has_the_seed_layout():
    """Seed 000 / 002: backbone at 0 (P3 = 2, P4 = 3, P5 = 4), SPPF 5, Detect on 11, 14, 17."""
    for name, backbone in [("yolov8-mobilenetv4.yaml", "mobilenetv4_small"), ("yolov8-fasternet.yaml", "FasterNet")]:
        rows = layers(name)
        assert rows[0] == [-1, 1, backbone, []] and rows[1][2] == "SPPF"
        assert [r[0] for r in rows if r[2] == "Concat"] == [[-1, 3], [-1, 2], [-1, 8], [-1, 5]]
        assert rows[-1] == [[11, 14, 17], 1, "Detect", ["nc"]]


def test_rtdetr_mobilenetv3_has_the_seed_layout():
    """Seed 001: input projections read P5 (-1 from 4), P4 = 3, P3 = 2; decoder on 16, 19, 22."""
    rows = layers("rtdetr-mobilenetv3.yaml")
    assert rows[0] == [-1, 1, "MobileNetV3", []]
    assert [r[0] for r in rows if r[2] == "Conv" and r[3][:2] == [256, 1]][:4] == [-1, -1, 3, -1]
    assert [r[0] for r in rows if r[3] == [256, 1, 1, "None", 1, 1, False]] == [-1, 3, 2]
    assert rows[-1] == [[16, 19, 22], 1, "RTDETRDecoder", ["nc", 256, 300, 4, 8, 3]]


@pytest.mark.parametrize(
    "name, p3, p4, p5",
    [
        ("yolov5-mobilenetv3-small.yaml", 3, 8, 11),
        ("yolov5-mobilenetv3-large.yaml", 6, 12, 15),
        ("yolov5-mobileone-blocks.yaml", 4, 6, 8),
    ],
)
def test_layer_by_layer_backbones_have_head_indices_that_match(name, p3, p4, p5):
    """Seeds 003/004 read the wrong layers; here the head reads each backbone's deepest stride 8/16 maps."""
    model = yaml.safe_load(SHIPPED[name])
    strides = yamlgen.slot_strides(model["backbone"][:-1])  # the SPPF closes the backbone
    assert (strides[p3], strides[p4], strides[p5]) == (8, 16, 32) and len(strides) == p5 + 1
    assert [r[0][1] for r in model["head"] if r[2] == "Concat"][:2] == [p4, p3]
    assert model["head"][-1][2:] == ["Detect", ["nc"]] and "anchors" not in model  # anchor-free YOLOv5u


def test_stock_derivation_and_templates_agree():
    """Two paths to the same file: swapping the backbone of ultralytics' yolov8.yaml, and the template."""
    assert (
        yamlgen.derive("yolov8n.yaml", "mobilenetv4_small").split("\nnc:")[1]
        == SHIPPED["yolov8-mobilenetv4.yaml"].split("\nnc:")[1]
    )


BUILD_ALL = """
import json, sys, torch
from ultralytics import RTDETR, YOLO
torch.set_num_threads(1)
results = {}
for name in json.loads(sys.argv[1]):
    version, _, rest = name[:-5].partition("-")
    load = f"{version}n-{rest}.yaml" if version.startswith("yolo") else name  # the default scale
    model = (RTDETR if version == "rtdetr" else YOLO)(load).model
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 320, 320))
    model.train()(torch.zeros(2, 3, 320, 320))
    results[name] = dict(stride=model.stride.tolist(), type=model.model[0].type)
print(json.dumps(results))
"""


@pytest.fixture(scope="session")
def built(patched_tree):
    """Every shipped YAML built in one process (about a minute): import once, then one model at a time."""
    code = BUILD_ALL.replace("json.loads(sys.argv[1])", repr(sorted(SHIPPED)))
    return json.loads(run_py(patched_tree, code).strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_yaml_builds_and_runs_at_320_in_eval_and_train(built, name):
    assert name in built
    expected = [32.0] if name.startswith("rtdetr") else [8.0, 16.0, 32.0]
    assert built[name]["stride"] == expected
    first = layers(name)[0][2]
    assert built[name]["type"].endswith(first)  # a whole backbone keeps its YAML name as the layer type
