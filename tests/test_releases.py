"""apply / compile / revert on real ultralytics releases, then real builds and forwards on each."""

from __future__ import annotations

import json
import py_compile
import shutil
import subprocess
import sys

import pytest

from bbpatch import api
from bbpatch.engine.tree import TESTED_RELEASES, version_tuple

from conftest import RELEASE_CACHE, cache_lock, copy_package, release_package
from helpers import run_cli, run_json, run_py, tree_bytes

RELEASES = TESTED_RELEASES
# The ultralytics/yolo/ layout (utils/ and cfg/ under yolo/) up to 8.0.135; 8.0.136 is the first without it.
LEGACY_RELEASES = ("8.0.0", "8.0.50", "8.0.100", "8.0.135", "8.0.136")


def folders(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"}


def is_yolo_layout(version: str) -> bool:
    return version_tuple(version) <= (8, 0, 135)


@pytest.mark.parametrize("version", RELEASES + LEGACY_RELEASES)
def test_apply_compiles_and_reverts_byte_identical(version, tmp_path):
    root = copy_package(release_package(version), tmp_path)
    before, before_folders = tree_bytes(root), folders(root)
    report = api.apply(root)
    assert report.state == "patched" and report.tree.version == version
    assert all(state in ("applied", "n/a") for state in report.edits.values())
    for key in ("nn/tasks.py", "utils/torch_utils.py"):
        py_compile.compile(str(report.tree.file(key)), doraise=True)
    torch_utils = report.tree.file("utils/torch_utils.py")
    assert torch_utils.parent.parent.name == ("yolo" if is_yolo_layout(version) else "ultralytics")
    assert b"backbone" in torch_utils.read_bytes()  # flops_full_size landed in the file the release imports
    status = api.status(root)
    assert status.state == "patched" and not status.problems
    assert api.apply(root).state == "already-patched"
    assert tree_bytes(root) != before
    api.revert(root)
    assert tree_bytes(root) == before and folders(root) == before_folders  # no stray utils/ or cfg/ either


@pytest.mark.parametrize("version", ("8.0.100", "8.0.136"))
def test_cli_round_trip_across_the_layout_boundary(version, tmp_path):
    root = copy_package(release_package(version), tmp_path)
    before, before_folders = tree_bytes(root), folders(root)
    assert run_cli("apply", str(root)).returncode == 0
    status = run_cli("status", str(root))
    assert status.returncode == 0, status.stdout
    assert "already patched" in run_cli("apply", str(root)).stdout
    assert run_cli("revert", str(root)).returncode == 0
    assert tree_bytes(root) == before and folders(root) == before_folders


STOCK_PARITY = """
import hashlib, json, torch
from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel

def digest(obj, h):
    if isinstance(obj, torch.Tensor):
        h.update(obj.detach().contiguous().numpy().tobytes())
    elif isinstance(obj, dict):
        for key in sorted(obj):
            digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            digest(item, h)
    return h

result = {}
for cfg, cls in (("yolov8n.yaml", DetectionModel), ("rtdetr-l.yaml", RTDETRDetectionModel)):
    torch.manual_seed(0)
    model = cls(cfg, verbose=False).eval()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    result[cfg] = [sum(p.numel() for p in model.parameters()), digest(out, hashlib.sha256()).hexdigest()]
print(json.dumps(result))
"""

BACKBONE_BUILD = """
import copy, json, thop, torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops
model = DetectionModel("yolov8n-mobilenetv4.yaml", verbose=False)
model.eval()
with torch.no_grad():
    model(torch.rand(1, 3, 128, 128))
se_model = DetectionModel("yolov8n-mobilenetv3.yaml", verbose=False)  # squeeze-excitation: not area-linear
full = thop.profile(copy.deepcopy(se_model), inputs=[torch.empty(1, 3, 256, 256)], verbose=False)[0] / 1e9 * 2
print(json.dumps({
    "stride": model.stride.tolist(),
    "type": model.model[0].type,
    "i": [m.i for m in model.model[:3]],
    "gflops/full": round(get_flops(se_model, 256) / full, 4),
}))
"""


@pytest.mark.parametrize("version", RELEASES)
def test_stock_models_identical_and_backbone_builds(version, tmp_path):
    package = release_package(version)
    clean = copy_package(package, tmp_path / "clean")
    patched = copy_package(package, tmp_path / "patched")
    api.apply(patched)
    stock = run_json(clean, STOCK_PARITY)
    # one process for the patched tree: its stock models first (each seeded), then the backbone models
    printed = run_py(patched, STOCK_PARITY + BACKBONE_BUILD).splitlines()
    patched_stock, built = [json.loads(line) for line in printed if line.startswith("{")][-2:]
    assert patched_stock == stock
    assert stock["yolov8n.yaml"][0] > 2_000_000
    assert built == {
        "stride": [8.0, 16.0, 32.0],
        "type": "MobileNetV4ConvSmall_050",
        "i": [4, 5, 6],
        "gflops/full": 1.0,
    }


LEGACY_SITE = RELEASE_CACHE / "legacy-site"
# What 8.0.x imports at start-up that current environments lack: pkg_resources (setuptools < 81) and seaborn.
LEGACY_REQUIREMENTS = ("setuptools<81", "seaborn")


@pytest.fixture(scope="session")
def legacy_site():
    """A folder for PYTHONPATH with what old 8.0.x releases import (kept out of the venv: setuptools < 81)."""
    with cache_lock():  # one process installs it; a half-installed folder is removed and installed again
        if not (LEGACY_SITE / "pkg_resources").is_dir() or not (LEGACY_SITE / "seaborn").is_dir():
            shutil.rmtree(LEGACY_SITE, ignore_errors=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(LEGACY_SITE)]
                + list(LEGACY_REQUIREMENTS),
                check=True,
            )
    return LEGACY_SITE


LEGACY_BUILD = """
import copy, json, os, thop, torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.yolo.utils.torch_utils import get_flops
torch.manual_seed(0)
stock = DetectionModel("yolov8n.yaml", verbose=False).eval()
x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    out = stock(x)[0]
result = {"stock": [sum(p.numel() for p in stock.parameters()), round(float(out.double().sum()), 3)]}
if os.environ.get("BACKBONE_YAML"):
    model = DetectionModel(os.environ["BACKBONE_YAML"], verbose=False).eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 128, 128))
    full = thop.profile(copy.deepcopy(model), inputs=[torch.empty(1, 3, 256, 256)], verbose=False)[0] / 1e9 * 2
    result["stride"] = model.stride.tolist()
    result["i"] = [m.i for m in model.model[:3]]
    result["gflops/full"] = round(get_flops(model, 256) / full, 4)
print(json.dumps(result))
"""


def backbone_yaml(root, version: str, legacy_site) -> str:
    """The shipped YAML where the release reads ``scales`` (8.0.55+), else one derived from its stock yolov8n.yaml
    (``bbpatch yaml`` builds it in the tree, which imports pkg_resources: the legacy site goes on its path)."""
    if version_tuple(version) >= (8, 0, 55):
        return "yolov8n-mobilenetv4.yaml"
    derived = root / "yolov8n-mnv4-derived.yaml"
    base = root / "ultralytics" / "models" / "v8" / "yolov8n.yaml"
    yaml_args = ("yaml", "--base", str(base), "--backbone", "MobileNetV4ConvSmall", "-o", str(derived))
    result = run_cli(*yaml_args, env={"PYTHONPATH": str(legacy_site)})
    assert result.returncode == 0, result.stderr
    return str(derived)


@pytest.mark.parametrize("version", ("8.0.50", "8.0.100", "8.0.135"))
def test_yolo_layout_release_builds_a_backbone_model(version, tmp_path, legacy_site):
    package = release_package(version)
    clean = copy_package(package, tmp_path / "clean")
    patched = copy_package(package, tmp_path / "patched")
    api.apply(patched)
    stock = run_json(clean, LEGACY_BUILD, env={"PYTHONPATH": str(legacy_site)})
    env = {"PYTHONPATH": str(legacy_site), "BACKBONE_YAML": backbone_yaml(patched, version, legacy_site)}
    built = run_json(patched, LEGACY_BUILD, env=env)
    assert stock["stock"][0] > 3_000_000
    assert built == {**stock, "stride": [8.0, 16.0, 32.0], "i": [4, 5, 6], "gflops/full": 1.0}
