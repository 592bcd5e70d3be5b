"""The shipped model YAMLs: generated from the templates, laid out like the seed recipes, and buildable."""

import json

import pytest
import yaml

from bbpatch import api
from bbpatch.models import yaml_bases, yamlgen
from bbpatch.verify import UnknownYaml, resolve_yamls
from bbpatch.verify.dataset import offline_environment, write_dataset
from bbpatch.verify.target import load
from bbpatch.verify.yamls import not_installed_results

from conftest import copy_package, release_package
from helpers import run_cli, run_json, run_py

SHIPPED = yamlgen.shipped_yamls()
YAMLS_DIR = yamlgen.catalog.package_dir("bbpatch.yamls")


def layers(name):
    model = yaml.safe_load(SHIPPED[name])
    return model["backbone"] + model["head"]


def test_committed_yamls_equal_generator_output():
    committed = {p.name: p.read_text(encoding="utf-8") for p in YAMLS_DIR.glob("*.yaml")}
    assert committed == SHIPPED, "run `python -m bbpatch.models.yamlgen` and commit yamls/"


def test_one_yaml_per_family_default_and_head_plus_the_block_systems():
    families = yamlgen.catalog.FAMILY_DEFAULTS
    expected = {f"{head}-{family}.yaml" for head in yamlgen.HEADS for family in families}
    expected |= {f"{system}.yaml" for system in yamlgen.BLOCK_SYSTEMS}
    assert set(SHIPPED) == expected and len(SHIPPED) == 13 * 6 + 3


def test_every_head_names_the_stock_yaml_a_release_needs_to_build_it():
    assert set(yaml_bases.STOCK_BASES) == set(yamlgen.HEADS)
    assert yaml_bases.stock_base("yolo26-seg-mobilenetv4.yaml") == "yolo26-seg.yaml"
    assert yaml_bases.stock_base("yolov5-mobilenetv3-small.yaml") == "yolov5.yaml"


@pytest.mark.parametrize("head", sorted(yamlgen.STOCK_HEADS))
def test_stock_head_templates_are_the_installed_release_stock_yamls(head):
    template = yamlgen.catalog.package_dir("bbpatch.templates") / "heads" / f"{head}.yaml"
    assert template.read_text(encoding="utf-8") == yamlgen.stock_head_template(head), (
        "run `python -m bbpatch.models.yamlgen --head-templates`, then `python -m bbpatch.models.yamlgen`, "
        "and commit both"
    )


def test_yolo26_yamls_keep_the_end_to_end_head_and_yolo12_its_area_attention():
    for name in (n for n in SHIPPED if n.startswith("yolo26-")):
        model = yaml.safe_load(SHIPPED[name])
        assert model["end2end"] is True and model["reg_max"] == 1
        assert model["backbone"][1][2:] == ["SPPF", [1024, 5, 3, True]]
    assert [r[2] for r in layers("yolo12-mobilenetv4.yaml")].count("A2C2f") == 3


def test_yolov8_mobilenetv4_has_the_seed_layout():
    """Seed 000 / 002: backbone at 0 (P3 = 2, P4 = 3, P5 = 4), SPPF 5, Detect on 11, 14, 17."""
    for name, backbone in [
        ("yolov8-mobilenetv4.yaml", "MobileNetV4ConvSmall_050"),
        ("yolov8-fasternet.yaml", "FasterNetT0"),
    ]:
        rows = layers(name)
        assert rows[0] == [-1, 1, backbone, []] and rows[1][2] == "SPPF"
        assert [r[0] for r in rows if r[2] == "Concat"] == [[-1, 3], [-1, 2], [-1, 8], [-1, 5]]
        assert rows[-1] == [[11, 14, 17], 1, "Detect", ["nc"]]


def test_scaled_families_name_a_variant_per_scale_and_layer_0_names_the_first():
    for name, text in SHIPPED.items():
        model = yaml.safe_load(text)
        family = name[:-5].rsplit("-", 1)[-1]
        variants = model.get("backbone_scales")
        if family in yamlgen.catalog.FAMILY_SCALES and len(model.get("scales") or {}) > 1:
            assert list(variants) == list(model["scales"]) and model["backbone"][0][2] == variants["n"], name
        else:
            assert variants is None, name
    assert yaml.safe_load(SHIPPED["yolo11-mobileone.yaml"])["backbone_scales"] == dict(
        n="MobileOneS0", s="MobileOneS1", m="MobileOneS2", l="MobileOneS3", x="MobileOneS4"
    )


def test_the_seed_fasternet_system_is_reachable_by_its_name():
    """Seed 002 builds FasterNet-T2 at every scale: `bbpatch yaml --backbone FasterNet` gives that model."""
    seed = yaml.safe_load(yamlgen.derive("yolov8n.yaml", "FasterNet"))
    shipped = yaml.safe_load(SHIPPED["yolov8-fasternet.yaml"])
    assert seed["backbone"][0] == [-1, 1, "FasterNet", []] and "backbone_scales" not in seed
    assert seed["backbone"][1:] == shipped["backbone"][1:] and seed["head"] == shipped["head"]
    assert yamlgen.catalog.BACKBONES["FasterNet"].timm_name == "fasternet_t2"


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
    """Two paths to the same model: swapping the backbone of ultralytics' yolov8.yaml, and the template."""
    derived = yaml.safe_load(yamlgen.derive("yolov8n.yaml", "MobileNetV4ConvSmall_050"))
    shipped = yaml.safe_load(SHIPPED["yolov8-mobilenetv4.yaml"])
    assert shipped.pop("backbone_scales")["n"] == "MobileNetV4ConvSmall_050"
    assert derived == shipped


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


NEW_HEADS = ("yolo26", "yolo26-seg", "yolo26-pose", "yolo26-obb", "yolo12")

SCALES = """
import json
from ultralytics import YOLO
sizes = {}
for stem in STEMS:
    version, _, rest = stem.partition("-")
    for scale in "ns":
        model = YOLO(f"{version}{scale}-{rest}.yaml").model
        sizes[f"{stem}/{scale}"] = [model.yaml["scale"], sum(p.numel() for p in model.parameters())]
print(json.dumps(sizes))
"""


def test_new_yamls_load_by_the_scale_letter(patched_tree):
    stems = [f"{head}-mobilenetv4" for head in NEW_HEADS]
    sizes = json.loads(run_py(patched_tree, SCALES.replace("STEMS", repr(stems))).strip().splitlines()[-1])
    for stem in stems:
        (n_scale, n_params), (s_scale, s_params) = sizes[f"{stem}/n"], sizes[f"{stem}/s"]
        assert (n_scale, s_scale) == ("n", "s") and s_params > 1.5 * n_params, stem


BY_SCALE = """
import json
from ultralytics import RTDETR, YOLO
out = {}
for name in ["yolov8n-fasternet.yaml", "yolov8s-fasternet.yaml", "yolov8m-fasternet.yaml", "yolov8-fasternet.yaml",
             "yolo11n-mobileone.yaml", "yolo11s-mobileone.yaml", "yolo11l-mobilenetv1.yaml", "rtdetr-mobilenetv3.yaml"]:
    model = (RTDETR if name.startswith("rtdetr") else YOLO)(name).model
    layer = model.model[0]
    assert layer.type == type(layer).__name__, (layer.type, type(layer).__name__)  # the summary names the variant
    out[name] = [layer.type, layer.timm_name, sum(p.numel() for p in model.parameters())]
try:
    YOLO(BAD)
except ValueError as error:
    out["error"] = str(error)
print(json.dumps(out))
"""


def test_the_scale_letter_picks_the_backbone_variant(patched_tree, tmp_path):
    """n is each family's fast end (FasterNet-T0, MobileOne-S0); no letter builds the first scale, as upstream."""
    bad = tmp_path / "yolov8s-typo.yaml"
    bad.write_text(SHIPPED["yolov8-fasternet.yaml"].replace("  s: FasterNetT1", "  s: FasterNetT9"), encoding="utf-8")
    out = run_json(patched_tree, BY_SCALE.replace("BAD", repr(str(bad))))
    assert [out[f"yolov8{s}-fasternet.yaml"][1] for s in "nsm"] == ["fasternet_t0", "fasternet_t1", "fasternet_t2"]
    assert out["yolov8-fasternet.yaml"] == out["yolov8n-fasternet.yaml"]
    assert [out[f"yolo11{s}-mobileone.yaml"][0] for s in "ns"] == ["MobileOneS0", "MobileOneS1"]
    assert out["yolo11l-mobilenetv1.yaml"][0] == "MobileNetV1_125"
    assert out["rtdetr-mobilenetv3.yaml"][0] == "MobileNetV3"  # one scale ('l'): the seed's backbone
    params = [out[f"yolov8{s}-fasternet.yaml"][2] for s in "nsm"]
    assert params == sorted(params) and params[0] < 0.25 * params[2]
    assert str(bad) in out["error"] and "'FasterNetT9' for scale 's'" in out["error"] and "bbpatch list" in out["error"]


def test_verify_fails_a_backbone_scales_name_that_is_no_backbone(patched_tree, tmp_path):
    """verify builds the default scale only: a typo at another scale is caught statically, with the YAML named."""
    mine = tmp_path / "yolov8-mine.yaml"
    mine.write_text(SHIPPED["yolov8-fasternet.yaml"].replace("  l: FasterNetS", "  l: FasterNetSS"), encoding="utf-8")
    proc = run_cli("verify", str(patched_tree), "--fast", "--no-cache", "--yaml", str(mine), "--json")
    results = json.loads(proc.stdout)["results"]
    failed = [r for r in results if r["status"] == "fail"]
    assert proc.returncode == 1 and [r["check"] for r in failed] == ["backbone_scales"]
    assert "yolov8-mine.yaml: backbone_scales names 'FasterNetSS' for scale 'l'" in failed[0]["detail"]
    assert any(r["check"] == "build" and r["status"] == "pass" for r in results)  # the n model still builds


EVERY_SCALE = """
import json, torch
from ultralytics.nn.tasks import DetectionModel
torch.set_num_threads(1)
out = {}
for family in FAMILIES:
    for scale in "nsmlx":
        model = DetectionModel(f"yolov8{scale}-{family}.yaml", verbose=False)
        out[f"{family}/{scale}"] = [model.model[0].type, model.stride.tolist()]
print(json.dumps(out))
"""


def test_every_family_builds_every_scale_with_the_variant_its_yaml_names(patched_tree):
    families = sorted(yamlgen.catalog.FAMILY_SCALES)
    out = run_json(patched_tree, EVERY_SCALE.replace("FAMILIES", repr(families)))
    for family in families:
        variants = yaml.safe_load(SHIPPED[f"yolov8-{family}.yaml"])["backbone_scales"]
        for scale, name in variants.items():
            assert out[f"{family}/{scale}"] == [name, [8.0, 16.0, 32.0]], (family, scale)


YOLO26_END_TO_END = """
import json, math, sys
from pathlib import Path
import onnxruntime, torch
from ultralytics import YOLO

data, workdir = DATA, WORKDIR
image = str(next((Path(data).parent / "images" / "val").glob("*.jpg")))


def rows_apart(a, b, imgsz=64):
    # Rows are (box, score, class) of the top-k (anchor, class) pairs. On a barely trained model the k-th score
    # is a near-tie, so pairs at that boundary differ between runtimes: rows clearly above it must be in both,
    # each compared with its nearest counterpart (order may differ too), boxes in image units.
    scale = torch.tensor([imgsz] * 4 + [1, 1], dtype=torch.float64)
    a, b = a[0].double(), b[0].double()
    kept = b[b[:, 4] > a[:, 4].min() + 1e-4]
    return float(torch.cdist(kept / scale, a / scale, p=float("inf")).amin(-1).amax()), len(kept)


model = YOLO("yolo26n-mobilenetv4.yaml")
model.train(
    data=data, epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, val=False, amp=False,
    pretrained=False, project=workdir, name="train", exist_ok=True, seed=0, verbose=False,
)
losses = [float(v) for v in model.trainer.label_loss_items(model.trainer.tloss).values()]
trained = YOLO(str(model.trainer.last))
predicted = trained.predict(image, imgsz=64, nms=False, conf=0.0, device="cpu", verbose=False)[0].boxes.data
x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
net = trained.model.eval()
net.end2end = True  # what predict(nms=False) and export(nms=False) select: the one-to-one, NMS-free head
with torch.no_grad():
    before = net(x)[0]
    net.fuse()
    after = net(x)[0]
onnx_path = trained.export(format="onnx", imgsz=64, nms=False, simplify=False, device="cpu")
session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
exported = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
onnx_boxes = YOLO(onnx_path, task="detect").predict(image, imgsz=64, conf=0.0, verbose=False)[0].boxes.data
print(json.dumps(dict(
    losses_finite=bool(losses) and all(math.isfinite(v) for v in losses),
    predicted=list(predicted.shape), end_to_end=list(before.shape), fused=list(after.shape),
    fuse_error=rows_apart(before, after), onnx=list(exported.shape), onnx_error=rows_apart(after, exported),
    onnx_predicted=list(onnx_boxes.shape),
)))
"""


def test_yolo26_trains_predicts_fuses_and_exports_end_to_end(patched_tree, tmp_path):
    data = write_dataset(tmp_path / "data")
    code = YOLO26_END_TO_END.replace("DATA", repr(str(data))).replace("WORKDIR", repr(str(tmp_path / "runs")))
    out = json.loads(run_py(patched_tree, code, offline_environment(tmp_path / "config")).strip().splitlines()[-1])
    assert out["losses_finite"]
    assert out["predicted"][1] == 6 and 0 < out["predicted"][0] <= 300  # NMS-free: top-k boxes, no NMS
    assert out["end_to_end"][0] == 1 and out["end_to_end"][2] == 6  # (batch, top-k, xyxy + score + class)
    (fuse_error, fuse_rows), (onnx_error, onnx_rows) = out["fuse_error"], out["onnx_error"]
    assert out["fused"] == out["end_to_end"] and fuse_error < 1e-3 and fuse_rows > 0
    assert out["onnx"] == out["end_to_end"] and onnx_error < 1e-2 and onnx_rows > 0
    assert out["onnx_predicted"][1] == 6


OLDER_RELEASE = "8.3.253"  # has YOLO12, not YOLO26


@pytest.fixture(scope="module")
def older_patched(tmp_path_factory):
    root = copy_package(release_package(OLDER_RELEASE), tmp_path_factory.mktemp("older"))
    api.apply(root)
    return root


def test_a_release_without_yolo26_gets_no_yolo26_yamls_and_verify_says_so(older_patched):
    patched = load(older_patched)
    installed = {p.name for p in patched.yamls()}
    yolo26 = {n for n in SHIPPED if n.startswith("yolo26-")}
    assert len(yolo26) == 24 and not installed & yolo26
    assert installed == set(SHIPPED) - yolo26  # YOLO12 and the rest are there
    [result] = not_installed_results(patched)
    assert result.status == "skip" and set(result.data["not_installed"]) == yolo26
    assert "yolo26.yaml" in result.detail and OLDER_RELEASE in result.detail
    with pytest.raises(UnknownYaml, match="not installed, ultralytics 8.3.253 has no yolo26-seg.yaml"):
        resolve_yamls(patched, ["yolo26s-seg-mobilenetv4.yaml"])


def test_verify_cli_names_the_missing_stock_yaml_instead_of_crashing(older_patched):
    proc = run_cli("verify", str(older_patched), "--fast", "--yaml", "yolo26n-mobilenetv4.yaml")
    assert proc.returncode == 2
    assert "has no yolo26.yaml" in proc.stdout + proc.stderr


def test_the_yolo12_yaml_installed_on_the_older_release_builds_there(older_patched):
    code = "from ultralytics import YOLO; print(YOLO('yolo12n-mobilenetv4.yaml').model.stride.tolist())"
    assert run_py(older_patched, code).strip().splitlines()[-1] == "[8.0, 16.0, 32.0]"


def test_the_generator_takes_an_option_for_an_option_not_for_a_folder(tmp_path):
    import subprocess
    import sys

    for option, code in (("--help", 0), ("--bogus", 2)):
        proc = subprocess.run(
            [sys.executable, "-m", "bbpatch.models.yamlgen", option], cwd=tmp_path, capture_output=True
        )
        assert proc.returncode == code and proc.stdout.startswith(b"usage: python -m bbpatch.models.yamlgen")
    assert list(tmp_path.iterdir()) == []  # before: 81 YAMLs written into a folder named --help
