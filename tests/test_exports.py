"""The export matrix: a shipped backbone model exported to every format, loaded back through ultralytics, compared.

Real exporters and runtimes (onnxruntime, OpenVINO, NCNN/PNNX, LiteRT in .venv-tflite, coremltools), no mocks.
"""

from __future__ import annotations

import json
import sys

import pytest

from bbpatch.verify import exports

from helpers import run_cli, run_py

YAML = "yolov8-mobilenetv4"  # one shipped whole-backbone model; verify exports it at its 128 px probe size
EXPORT_CHECKS = [f.check_name for f in exports.FORMATS]


def results_by_check(proc):
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return {r["check"]: r for r in json.loads(proc.stdout)["results"] if r["subject"] in (f"{YAML}.yaml", "exports")}


@pytest.fixture(scope="module")
def matrix(patched_tree, tmp_path_factory):
    """One verify run of every export check on one model (about 50 s on 2 CPUs, TFLite's 20 s of it)."""
    keep = tmp_path_factory.mktemp("exports")
    proc = run_cli("verify", str(patched_tree), "--yaml", YAML, "--check", ",".join(EXPORT_CHECKS), "--json",
                   "--keep", str(keep))  # fmt: skip
    return proc, results_by_check(proc), keep


def test_every_runtime_of_the_export_extra_is_installed():
    """The full gate fails on a missing runtime, so make install must have installed every one (TFLite included)."""
    assert {f.name: exports.missing_modules(f) for f in exports.FORMATS} == {f.name: [] for f in exports.FORMATS}


@pytest.mark.parametrize("fmt", [f for f in exports.FORMATS if f.budget is not None], ids=lambda f: f.name)
def test_each_format_matches_pytorch_within_its_budget(matrix, fmt):
    _, results, _ = matrix
    result = results[fmt.check_name]
    assert result["status"] == "pass", result["detail"]
    assert result["data"]["format"] == fmt.name
    assert 0 <= result["data"]["relative_error"] <= fmt.budget
    assert result["data"]["export_s"] > 0


def test_coreml_converts_and_declares_the_pytorch_output_shape(matrix):
    _, results, keep = matrix
    result = results["export_coreml"]
    assert result["status"] == "pass", result["detail"]
    anchors = sum((128 // s) ** 2 for s in (8, 16, 32))
    assert result["data"]["outputs"][0] == [1, 84, anchors]
    assert list(keep.rglob("*.mlpackage")), "no .mlpackage written"


def test_the_files_are_real_exports_of_each_format(matrix):
    proc, _, keep = matrix
    assert proc.returncode == 0, proc.stderr[-3000:]
    for pattern in ("*.torchscript", "*.onnx", "*_openvino_model/*.xml", "*_ncnn_model/model.ncnn.param", "*.tflite"):
        assert list(keep.rglob(pattern)), f"no {pattern} under {keep}"


def test_openvino_is_compared_in_float32_and_its_default_precision_reported(matrix):
    _, results, _ = matrix
    data = results["export_openvino"]["data"]
    assert "bf16_relative_error" in data and data["bf16_relative_error"] >= data["relative_error"]


def test_an_export_of_different_weights_fails_the_comparison(patched_tree, tmp_path):
    """The budget catches a wrong export: the ONNX file compared after one backbone conv changed by 1%."""
    code = """
import torch
from pathlib import Path
from bbpatch.verify import exports
from bbpatch.verify.checks import Context, calibrating_batchnorm, model_class, sample_input
ctx = Context("m", "yolov8-mobilenetv4.yaml", {"kind": "yolo", "task": "detect"}, Path("."), Path("."), 128)
model = model_class(ctx.inputs)(ctx.yaml, verbose=False)
calibrating_batchnorm(model)
with torch.no_grad():
    model.train()(sample_input(128, batch=2, seed=1))
model.eval()
x = sample_input(128)
fmt = exports.BY_NAME["onnx"]
result = exports.export_and_run(model, "onnx", x, Path(r"WORKDIR"), "m")
print("same", exports.compared(ctx, fmt, exports.fused_reference(model, x), result)[1]["relative_error"])
with torch.no_grad():
    next(m for m in model.model[0].modules() if isinstance(m, torch.nn.Conv2d)).weight.mul_(1.01)
try:
    exports.compared(ctx, fmt, exports.fused_reference(model, x), result)
except AssertionError as e:
    print("caught", e)
"""
    out = run_py(patched_tree, code.replace("WORKDIR", str(tmp_path / "onnx")), timeout=300)  # never into the tree
    same = float(out.split("same ")[1].split()[0])
    assert same <= exports.BY_NAME["onnx"].budget
    assert "caught ONNX differs from PyTorch by" in out, out


def test_a_runtime_that_fails_to_import_fails_the_full_gate_with_the_install_hint(patched_tree, tmp_path):
    hidden = tmp_path / "shim" / "openvino"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('openvino hidden by the test')\n")
    proc = run_cli("verify", str(patched_tree), "--yaml", YAML, "--check", "export_openvino", "--json",
                   env={"PYTHONPATH": str(hidden.parent)})  # fmt: skip
    assert proc.returncode == 1
    result = results_by_check(proc)["export_openvino"]
    assert result["status"] == "fail"
    assert "openvino not installed: pip install 'bbpatch[export]'" in result["detail"]


def test_a_missing_tflite_venv_is_a_skip_with_the_hint_in_fast_and_a_failure_in_the_full_gate(patched_tree):
    without = {"BBPATCH_TFLITE_PYTHON": sys.executable}  # the main venv: no litert-torch there
    fast = run_cli("verify", str(patched_tree), "--fast", "--yaml", YAML, "--json", env=without)
    assert fast.returncode == 0, fast.stderr[-3000:]
    skipped = results_by_check(fast)["export_tflite"]
    assert skipped["status"] == "skip" and "make tflite-venv" in skipped["detail"]
    assert skipped["detail"].startswith("skipped: litert_torch")
    full = run_cli("verify", str(patched_tree), "--yaml", YAML, "--check", "export_tflite", "--json", env=without)
    assert full.returncode == 1
    failed = results_by_check(full)["export_tflite"]
    assert failed["status"] == "fail" and "make tflite-venv" in failed["detail"]


def test_fast_reports_no_export_rows_when_every_runtime_is_installed(patched_tree):
    proc = run_cli("verify", str(patched_tree), "--fast", "--yaml", YAML, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not set(results_by_check(proc)) & set(EXPORT_CHECKS)
