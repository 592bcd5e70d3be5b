"""apply / compile / revert on real ultralytics releases, then real builds and forwards on each."""

from __future__ import annotations

import json
import py_compile

import pytest

from bbpatch import api
from bbpatch.tree import TESTED_RELEASES

from conftest import copy_package, release_package
from helpers import run_py, tree_bytes

RELEASES = TESTED_RELEASES


@pytest.mark.parametrize("version", RELEASES)
def test_apply_compiles_and_reverts_byte_identical(version, tmp_path):
    root = copy_package(release_package(version), tmp_path)
    before = tree_bytes(root)
    report = api.apply(root)
    assert report.state == "patched" and report.tree.version == version
    assert all(state in ("applied", "n/a") for state in report.edits.values())
    for key in ("nn/tasks.py", "utils/torch_utils.py"):
        py_compile.compile(str(report.tree.file(key)), doraise=True)
    assert api.status(root).state == "patched"
    assert api.apply(root).state == "already-patched"
    assert tree_bytes(root) != before
    api.revert(root)
    assert tree_bytes(root) == before


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
    stock = json.loads(run_py(clean, STOCK_PARITY))
    assert json.loads(run_py(patched, STOCK_PARITY)) == stock
    assert stock["yolov8n.yaml"][0] > 2_000_000
    built = json.loads(run_py(patched, BACKBONE_BUILD))
    assert built == {"stride": [8.0, 16.0, 32.0], "type": "mobilenetv4_small", "i": [4, 5, 6], "gflops/full": 1.0}
