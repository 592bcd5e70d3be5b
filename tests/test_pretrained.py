"""Pretrained weights reach the backbone unaltered: inside a YOLO or RT-DETR model, a backbone built from a local
checkpoint computes exactly what timm's own ``features_only`` model computes from the same file, bit for bit,
at construction, after a deepcopy / EMA, after a checkpoint save and reload, and after ``fuse()``."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from bbpatch import api

from conftest import copy_package, release_package
from helpers import run_cli, run_json, run_py, tree_env

# Written into the tree's process: every case builds its model from a checkpoint it writes itself.
PARITY = r'''
import copy, io, json, os, sys
import timm, torch, yaml
from timm.utils import reparameterize_model
from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel
from ultralytics.utils.torch_utils import ModelEMA

BATCHNORM = torch.nn.modules.batchnorm._BatchNorm


def trained_looking_checkpoint(timm_name, path):
    """A random timm classifier whose BatchNorm statistics look like a trained network's (variances 1e-3 .. 2e-2,
    where eps 1e-3 instead of 1e-5 shows), each BatchNorm's scale following them so that activations stay finite."""
    torch.manual_seed(0)
    model = timm.create_model(timm_name, pretrained=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, BATCHNORM)):
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) * 2e-2 + 1e-3)
            bn.weight.copy_(bn.running_var.sqrt() * (1 + 0.1 * torch.randn(bn.weight.shape, generator=g)))
    torch.save(model.state_dict(), path)


def timm_reference(timm_name, path):
    overlay = dict(file=os.path.abspath(os.path.expanduser(path)))
    return timm.create_model(timm_name, pretrained=True, features_only=True, pretrained_cfg_overlay=overlay).eval()


def maps(layer, reference, x):
    with torch.no_grad():
        ours = layer.eval()(x)
        theirs = [reference(x)[i] for i in layer.out_indices]
    assert all(torch.isfinite(t).all() for t in theirs), "the test checkpoint overflows: the comparison means nothing"
    return len(ours) == len(theirs) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(ours, theirs))


def norm_settings(module):
    return [(round(m.eps, 9), m.momentum) for m in module.modules() if isinstance(m, BATCHNORM)]


def reloaded(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


results = []
for case in json.loads(os.environ["CASES"]):
    trained_looking_checkpoint(case["timm"], case["write"])
    config = yaml.safe_load(open(case["yaml"]))
    config["backbone"][0] = [-1, 1, case["layer"], case["args"]]
    config.pop("backbone_scales", None)
    cls = RTDETRDetectionModel if case["head"] == "rtdetr" else DetectionModel
    model = cls(config, nc=4, verbose=False).eval()
    reference = timm_reference(case["timm"], case["write"])
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    layer = model.model[0]
    result = {
        "case": case["name"],
        "built": maps(layer, reference, x),
        "norm": norm_settings(layer.model) == norm_settings(reference),
        "deepcopy": maps(copy.deepcopy(model).model[0], reference, x),
        "ema": maps(ModelEMA(model).ema.model[0], reference, x),
        "reloaded": maps(reloaded(model).model[0], reference, x),
        "reloaded_norm": norm_settings(reloaded(model).model[0].model) == norm_settings(reference),
    }
    model.fuse()
    result["fused"] = maps(model.model[0], reparameterize_model(reference), x)
    results.append(result)
print(json.dumps(results))
'''

# (layer class, timm model): every shipped family (its n variant, built by the shipped YAMLs), and TimmBackbone
# on a ResNet, a RegNet and a ConvNeXt; FasterNet, ResNet (plain BatchNorm2d throughout), MobileNetV4 and V3 (one
# each) were the ones ultralytics' initialize_weights altered.
BACKBONES = (
    ("FasterNetT0", "fasternet_t0"),
    ("MobileOneS0", "mobileone_s0"),
    ("MobileNetV4ConvSmall_050", "mobilenetv4_conv_small_050"),
    ("MobileNetV3Small_075", "mobilenetv3_small_075"),
    ("MobileNetV2_050", "mobilenetv2_050"),
    ("MobileNetV1", "mobilenetv1_100"),
    ("TimmBackbone", "resnet18"),
    ("TimmBackbone", "regnetx_002"),
    ("TimmBackbone", "convnext_atto"),
)
HEAD_YAMLS = {"yolo": "yolov8-mobilenetv4.yaml", "rtdetr": "rtdetr-mobilenetv4.yaml"}
CHECKS = ("built", "norm", "deepcopy", "ema", "reloaded", "reloaded_norm", "fused")


def case(head, layer, timm_name, tree, path_as_written, file_name):
    args = [timm_name, path_as_written] if layer == "TimmBackbone" else [path_as_written]
    yaml_path = next(tree.rglob(HEAD_YAMLS[head]))
    return dict(name=f"{head}-{timm_name}", head=head, layer=layer, timm=timm_name, args=args, yaml=str(yaml_path),
                write=file_name)  # fmt: skip


def failures(results):
    return {r["case"]: [c for c in CHECKS if not r[c]] for r in results if not all(r[c] for c in CHECKS)}


@pytest.mark.parametrize("head", HEAD_YAMLS)
def test_every_backbone_equals_timms_own_model_from_the_same_checkpoint(head, patched_tree, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cases = [case(head, layer, name, patched_tree, f"./{name}.pth", str(work / f"{name}.pth")) for layer, name in
             BACKBONES]  # fmt: skip
    results = run_json(work, PARITY, env={"PYTHONPATH": str(patched_tree), "CASES": json.dumps(cases)})
    assert [r["case"] for r in results] == [c["name"] for c in cases]
    assert failures(results) == {}


def test_stock_models_keep_ultralytics_initialization(patched_tree):
    code = """
import json, torch
from ultralytics.nn.tasks import DetectionModel
model = DetectionModel("yolov8n.yaml", verbose=False)
print(json.dumps(sorted({(m.eps, m.momentum) for m in model.modules() if type(m) is torch.nn.BatchNorm2d})))
"""
    assert run_json(patched_tree, code) == [[0.001, 0.03]]


def test_parity_on_old_releases(tmp_path):
    """The shield is a module type, not an edit: it holds wherever ultralytics' init matches exact types."""
    for version in ("8.1.47", "8.3.100"):
        root = copy_package(release_package(version), tmp_path / version)
        api.apply(root)
        work = tmp_path / f"work-{version}"
        work.mkdir()
        cases = [case("yolo", "FasterNetT0", "fasternet_t0", root, "fasternet_t0.pth", str(work / "fasternet_t0.pth"))]
        results = run_json(work, PARITY, env={"PYTHONPATH": str(root), "CASES": json.dumps(cases)})
        assert failures(results) == {}, version


# ---------------------------------------------------------------- every checkpoint path form

PATH_FORMS = {  # as written in the YAML -> where the test puts the file (relative to the working directory "cwd")
    "plain name": ("w.pth", "cwd/w.pth"),
    "relative": ("w/s0.pth", "cwd/w/s0.pth"),
    "dot-slash": ("./w/s0.pth", "cwd/w/s0.pth"),
    "parent": ("../shared/s0.pth", "shared/s0.pth"),
    "absolute": ("{root}/abs/s0.pth", "abs/s0.pth"),
    "home": ("~/models/s0.pth", "home/models/s0.pth"),
    "dots, hyphens and spaces": (
        "./my weights/mnv4.conv-small 0.5.v2.pth",
        "cwd/my weights/mnv4.conv-small 0.5.v2.pth",
    ),
}
if os.name == "nt":  # a drive path exists only where the OS has drives
    PATH_FORMS["windows drive"] = ("{root}\\win\\s0.pth", "win/s0.pth")

BUILD_FROM_YAML = """
import json, os, torch
from ultralytics import YOLO
torch.manual_seed(0)  # a backbone built without its checkpoint is always the same one
model = YOLO(os.environ["MODEL_YAML"]).model.eval()
with torch.no_grad():
    maps = model.model[0](torch.ones(1, 3, 64, 64))
print(json.dumps([round(float(m.double().sum()), 6) for m in maps]))
"""

CHECKPOINT = """
import sys, timm, torch
torch.manual_seed(3)
model = timm.create_model("mobilenetv4_conv_small_050", pretrained=False)
for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
    bn.running_var.uniform_(1e-3, 2e-2)
torch.save(model.state_dict(), sys.argv[1])
"""


def backbone_yaml(tree, tmp_path, args_text):
    shipped = next(tree.rglob("yolov8-mobilenetv4.yaml")).read_text()
    assert "MobileNetV4ConvSmall_050, []" in shipped
    path = tmp_path / "yolov8n-mine.yaml"
    path.write_text(shipped.replace("MobileNetV4ConvSmall_050, []", f"MobileNetV4ConvSmall_050, {args_text}"))
    return path


def test_every_checkpoint_path_form_builds_the_same_model(patched_tree, tmp_path):
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    source = tmp_path / "source.pth"
    write_checkpoint(source)
    env = {"PYTHONPATH": str(patched_tree), "HOME": str(home)}
    outputs = {}
    for form, (written, location) in PATH_FORMS.items():
        target = tmp_path / location
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        written = written.format(root=tmp_path)
        model_yaml = backbone_yaml(patched_tree, tmp_path, json.dumps([written]))
        outputs[form] = run_json(cwd, BUILD_FROM_YAML, env={**env, "MODEL_YAML": str(model_yaml)})
        target.unlink()  # the next form cannot find this file by accident
    random_init = run_json(
        cwd, BUILD_FROM_YAML, env={**env, "MODEL_YAML": str(backbone_yaml(patched_tree, tmp_path, "[]"))}
    )
    assert len(set(map(tuple, outputs.values()))) == 1, outputs
    assert next(iter(outputs.values())) != random_init  # the checkpoint was loaded, not ignored


def write_checkpoint(path):
    run_py(path.parent, CHECKPOINT.replace("sys.argv[1]", repr(str(path))))


@pytest.mark.parametrize("written", ["[True]", '["True"]', '["true"]'])
def test_true_written_any_way_asks_timm_for_hub_weights(patched_tree, tmp_path, written):
    result = build_offline(patched_tree, tmp_path, backbone_yaml(patched_tree, tmp_path, written))
    assert "cannot get timm's pretrained weights for mobilenetv4_conv_small_050" in error_line(result)


@pytest.mark.parametrize("written", ["[False]", '["False"]', '["false"]', "[None]", "[]"])
def test_false_written_any_way_builds_without_weights(patched_tree, tmp_path, written):
    assert build_offline(patched_tree, tmp_path, backbone_yaml(patched_tree, tmp_path, written)).returncode == 0


def build_offline(tree, tmp_path, model_yaml):
    code = f"from ultralytics import YOLO\nYOLO({str(model_yaml)!r})"
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    return run_python(tree, tmp_path, code, env)


def error_line(result):
    return result.stderr.strip().splitlines()[-1]


def test_missing_checkpoint_is_one_line_naming_the_path_and_the_layer(patched_tree, tmp_path):
    model_yaml = backbone_yaml(patched_tree, tmp_path, '["./weights/missing.pth"]')
    code = f"from ultralytics import YOLO\nYOLO({str(model_yaml)!r})"
    result = run_python(patched_tree, tmp_path, code)
    assert result.returncode != 0
    line = error_line(result)
    assert "PretrainedWeightsError: " in line
    assert f"{model_yaml} layer 0 (MobileNetV4ConvSmall_050): " in line
    assert "'./weights/missing.pth' not found (relative to the working directory" in line
    assert "During handling of the above exception" not in result.stderr


def test_hub_weights_offline_is_one_line_with_the_way_out(patched_tree, tmp_path):
    model_yaml = backbone_yaml(patched_tree, tmp_path, "[True]")
    result = build_offline(patched_tree, tmp_path, model_yaml)
    assert result.returncode != 0
    line = error_line(result)
    assert (
        "layer 0 (MobileNetV4ConvSmall_050): cannot get timm's pretrained weights for mobilenetv4_conv_small_050"
        in line
    )
    assert "pretrained: path/to/mobilenetv4_conv_small_050.pth" in line
    assert "During handling of the above exception" not in result.stderr


def run_python(tree, cwd, code, env=None):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=tree_env(tree, env), capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_bbpatch_yaml_pretrained_path_builds(patched_tree, tmp_path):
    """A path given to ``bbpatch yaml --pretrained`` is written so that parse_model hands it over as written."""
    weights = tmp_path / "w" / "mnv4 small.pth"
    weights.parent.mkdir()
    write_checkpoint(weights)
    out = tmp_path / "derived.yaml"
    result = run_cli("yaml", "--base", "yolov8n.yaml", "--backbone", "MobileNetV4ConvSmall_050",
                     "--pretrained", "./w/mnv4 small.pth", "-o", str(out), cwd=tmp_path)  # fmt: skip
    # bbpatch yaml builds what it writes, where the user trains: the relative path is found from there
    assert result.returncode == 0, result.stderr
    built = run_json(tmp_path, BUILD_FROM_YAML, env={"PYTHONPATH": str(patched_tree), "MODEL_YAML": str(out)})
    random_init = run_json(tmp_path, BUILD_FROM_YAML, env={"PYTHONPATH": str(patched_tree), "MODEL_YAML": str(
        backbone_yaml(patched_tree, tmp_path, "[]"))})  # fmt: skip
    assert built != random_init
