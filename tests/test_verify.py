"""bbpatch verify on real patched trees: it passes on a fresh patch and names what broke otherwise."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import libcst as cst
import pytest

from bbpatch import api
from bbpatch.engine.edits import EDITS
from bbpatch.verify import exports
from bbpatch.verify.core import default_jobs

from helpers import run_cli, run_json

# A whole-backbone YOLO model (training, ONNX, DDP, safe load) and a layer-by-layer one (block branch).
SMALL_YAMLS = ("yolov8-mobilenetv4", "yolov5-mobilenetv3-small")


def verify(root, *args, cwd=None):
    return run_cli("verify", str(root), *args, "--no-cache", cwd=cwd)


@pytest.fixture(scope="module")
def full_run(patched_tree, tmp_path_factory):
    """One default verify (every check) on two shipped YAMLs, with JSON on stdout and a JUnit file."""
    folder = tmp_path_factory.mktemp("verify")
    junit = folder / "verify.xml"
    keep = folder / "scratch"
    args = [arg for name in SMALL_YAMLS for arg in ("--yaml", name)]
    proc = verify(patched_tree, *args, "--json", "--junit", str(junit), "--keep", str(keep))
    return proc, json.loads(proc.stdout), ET.parse(junit).getroot(), keep


def results_by_key(report):
    return {(r["subject"], r["check"]): r for r in report["results"]}


def test_verify_passes_on_a_freshly_patched_tree(full_run):
    proc, report, _, _ = full_run
    failed = [f"{r['subject']} {r['check']}: {r['detail']}" for r in report["results"] if r["status"] == "fail"]
    assert proc.returncode == 0, failed or proc.stderr[-3000:]
    assert report["exit_code"] == 0
    checks = {r["check"] for r in report["results"] if r["status"] == "pass"}
    expected = {"release", "edits", "files", "build", "forward_eval", "forward_train", "strides", "gflops",
                "gflops_full", "export_onnx", "fuse", "train", "reload", "safe_load", "ddp", "unpatched_reference",
                "parity"}  # fmt: skip
    assert expected <= checks
    # both YAMLs represent their family, so export_onnx exports their heads: no ONNX sample is left to add
    assert "onnx" not in {r["check"] for r in report["results"]}


def test_every_selected_yaml_runs_the_model_checks(full_run):
    _, report, _, _ = full_run
    results = results_by_key(report)
    for name in SMALL_YAMLS:
        for check in ("build", "forward_eval", "forward_train", "strides", "gflops", "fuse"):
            assert results[(f"{name}.yaml", check)]["status"] == "pass"


def test_the_synthetic_training_run_really_trains(full_run):
    _, report, _, keep = full_run
    trained = [r for r in report["results"] if r["check"] == "train" and r["status"] == "pass"]
    assert trained
    for result in trained:
        losses = result["data"]["losses"]
        assert losses and all(math.isfinite(v) and v > 0 for v in losses.values())
        assert (keep / "data" / "labels" / "train").is_dir()  # verify wrote its own dataset
        assert "updated" in result["detail"]


def test_gflops_full_compares_only_where_get_flops_extrapolated(full_run):
    """A whole backbone makes get_flops profile the real 640 px image (flops_full_size): that figure is the
    full-size profile, not repeated; a layer-by-layer model is extrapolated, and profiled again at full size."""
    _, report, _, _ = full_run
    results = results_by_key(report)
    whole, blocks = (results[(f"{name}.yaml", "gflops_full")] for name in SMALL_YAMLS)
    assert whole["status"] == blocks["status"] == "pass"
    assert "profiled the real 640x640 image itself" in whole["detail"]
    assert "= full-size profile" in blocks["detail"] and "% off" in blocks["detail"]


def test_tflite_and_coreml_export_every_family_in_their_own_venv_processes(full_run):
    _, report, _, keep = full_run
    results = results_by_key(report)
    for fmt in ("tflite", "coreml"):
        processes = min(exports.BY_NAME[fmt].workers, default_jobs(), len(SMALL_YAMLS))  # TFLite 2, CoreML 1
        assert len(list(keep.glob(f"{fmt}-*.log"))) == processes  # the families share that format's processes
        for name in SMALL_YAMLS:
            result = results[(f"{name}.yaml", f"export_{fmt}")]
            assert result["status"] == "pass", result["detail"]
    assert len(list((keep / "tasks").glob("tflite-x*"))) == len(SMALL_YAMLS)


def test_json_and_junit_carry_the_same_results(full_run):
    _, report, junit, _ = full_run
    from_junit = {}
    for case in junit.iter("testcase"):
        status = "fail" if case.find("failure") is not None else "skip" if case.find("skipped") is not None else "pass"
        from_junit[(case.get("classname"), case.get("name"))] = status
    from_json = {key: r["status"] for key, r in results_by_key(report).items()}
    assert from_junit == from_json
    assert int(junit.find("testsuite").get("tests")) > 0


def remove_edit_by_hand(root, name):
    """Take one edit out of its file, keeping every other one (as a bad merge or a manual revert would)."""
    edit = next(e for e in EDITS if e.name == name)
    path = root / "ultralytics" / edit.file
    module = edit.revert(cst.parse_module(path.read_bytes()))
    path.write_text(module.code, encoding="utf-8")
    return edit


def test_a_removed_edit_fails_and_is_named(fresh_tree):
    api.apply(fresh_tree)
    edit = remove_edit_by_hand(fresh_tree, "stride_probe")
    proc = verify(fresh_tree, "--fast", "--yaml", SMALL_YAMLS[0], "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    failures = [r for r in json.loads(proc.stdout)["results"] if r["status"] == "fail"]
    assert any(r["check"] == f"edit {edit.name}" and edit.name in r["detail"] for r in failures), failures


def test_an_altered_module_file_is_named(fresh_tree):
    api.apply(fresh_tree)
    module = fresh_tree / "ultralytics" / "nn" / "Addmodules" / "mobilenet_blocks.py"
    module.write_text(module.read_text() + "\n# local tweak\n")
    proc = verify(fresh_tree, "--fast", "--yaml", SMALL_YAMLS[1])
    assert proc.returncode == 1
    assert "nn/Addmodules/mobilenet_blocks.py" in proc.stdout
    assert "changed since apply" in proc.stdout


def test_a_broken_module_fails_the_import_and_names_the_file(fresh_tree):
    api.apply(fresh_tree)
    module = fresh_tree / "ultralytics" / "nn" / "Addmodules" / "timm_backbones.py"
    module.write_text(module.read_text() + "\nraise RuntimeError('broken on purpose')\n")
    proc = verify(fresh_tree, "--fast", "--yaml", SMALL_YAMLS[0], "--json")
    assert proc.returncode == 1
    results = results_by_key(json.loads(proc.stdout))
    assert results[("tree", "import")]["status"] == "fail"
    assert "broken on purpose" in results[("tree", "import")]["detail"]
    assert "timm_backbones.py" in results[("tree", "import")]["detail"]
    assert results[("nn/Addmodules/timm_backbones.py", "file")]["status"] == "fail"


def test_a_yaml_that_does_not_build_is_named_with_the_check(patched_tree, tmp_path):
    broken = tmp_path / "broken-backbone.yaml"
    broken.write_text("nc: 2\nbackbone:\n  - [-1, 1, NoSuchBackbone, []]\nhead:\n  - [[2, 3, 4], 1, Detect, [nc]]\n")
    proc = verify(patched_tree, "--fast", "--yaml", str(broken), "--json")
    assert proc.returncode == 1
    build = results_by_key(json.loads(proc.stdout))[("broken-backbone.yaml", "build")]
    assert build["status"] == "fail" and "NoSuchBackbone" in build["detail"]


def test_an_unpatched_tree_exits_2(fresh_tree):
    proc = verify(fresh_tree, "--fast")
    assert proc.returncode == 2
    assert "not patched" in proc.stderr


def test_an_untested_release_fails_the_release_check_unless_allowed(fresh_tree):
    init = fresh_tree / "ultralytics" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "8.4.999"', init.read_text()))
    api.apply(fresh_tree)

    def release(*args):
        proc = verify(fresh_tree, "--fast", "--yaml", SMALL_YAMLS[0], "--json", *args)
        return proc.returncode, results_by_key(json.loads(proc.stdout))[("tree", "release")]

    code, result = release()
    assert code == 1 and result["status"] == "fail"
    assert "8.4.999 is outside the tested" in result["detail"] and "--allow-untested-release" in result["detail"]
    code, result = release("--allow-untested-release")
    assert code == 0 and result["status"] == "pass" and "accepted" in result["detail"]


def test_an_unknown_yaml_name_is_a_usage_error(patched_tree):
    proc = verify(patched_tree, "--fast", "--yaml", "no-such-model", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["exit_code"] == 2
    assert "no-such-model" in proc.stderr


def test_fast_remembers_builds_until_the_tree_or_the_yaml_changes(fresh_tree, tmp_path):
    api.apply(fresh_tree)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    shipped = fresh_tree / "ultralytics" / "nn" / "Addmodules" / "yamls" / f"{SMALL_YAMLS[1]}.yaml"
    mine = tmp_path / "my-model.yaml"
    mine.write_text(shipped.read_text())

    def builds():
        proc = run_cli(
            "verify", str(fresh_tree), "--fast", "--yaml", SMALL_YAMLS[0], "--yaml", str(mine), "--json", env=env
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {r["subject"]: r["detail"] for r in json.loads(proc.stdout)["results"] if r["check"] == "build"}

    assert not any("cached" in d for d in builds().values())
    assert all("cached" in d for d in builds().values())
    mine.write_text(mine.read_text() + "\n# edited\n")
    third = builds()
    assert "cached" in third[f"{SMALL_YAMLS[0]}.yaml"] and "cached" not in third["my-model.yaml"]
    module = fresh_tree / "ultralytics" / "nn" / "modules" / "block.py"  # not bbpatch's: no static failure
    module.write_text(module.read_text() + "\n# upstream change\n")
    assert not any("cached" in d for d in builds().values())


def test_fast_builds_write_zeros_where_torch_would_draw_random_weights():
    import torch

    from bbpatch.verify.checks import fast_build

    original, conv2d = torch.nn.init.kaiming_uniform_, torch.nn.functional.conv2d
    draw = vars(torch.Tensor).get("normal_")  # None: inherited from torch._C.TensorBase
    with fast_build():
        inside = torch.nn.Conv2d(3, 8, 3)
        drawn = torch.empty(16).normal_(), torch.empty(16).uniform_(-1, 1)  # as timm's initializers draw
        assert not torch.is_grad_enabled() and torch.nn.functional.conv2d is not conv2d
    assert not inside.weight.any() and inside.weight.requires_grad
    assert not any(t.any() for t in drawn)
    assert torch.nn.init.kaiming_uniform_ is original and torch.is_grad_enabled()
    assert torch.nn.functional.conv2d is conv2d and vars(torch.Tensor).get("normal_") is draw
    assert torch.nn.Conv2d(3, 8, 3).weight.any() and torch.empty(16).normal_().any()


CONVS = [  # (in, out, kernel, stride, padding, dilation, groups), input size
    ((3, 8, 3, 1, 1, 1, 1), 17), ((8, 8, 3, 2, 1, 1, 8), 17), ((4, 6, (3, 5), (2, 1), (1, 2), 1, 2), 16),
    ((4, 4, 3, 1, 2, 2, 1), 9), ((4, 4, 5, 1, "same", 2, 1), 11), ((4, 4, 3, 2, "valid", 1, 1), 10),
    ((4, 4, 1, 1, 0, 1, 1), 1),
]  # fmt: skip


@pytest.mark.parametrize("conv, size", CONVS)
def test_fast_builds_convolve_to_the_real_output_shape_holding_the_bias(conv, size):
    import torch
    import torch.nn.functional as F

    from bbpatch.verify.checks import shape_only_conv2d

    c_in, c_out, kernel, stride, padding, dilation, groups = conv
    layer = torch.nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups)
    torch.nn.init.zeros_(layer.weight)
    fast = shape_only_conv2d(F.conv2d)
    for x in (torch.rand(2, c_in, size, size + 1), torch.rand(c_in, size, size)):  # batched and not
        expected = F.conv2d(x, layer.weight, layer.bias, stride, padding, dilation, groups)
        got = fast(x, layer.weight, layer.bias, stride, padding, dilation, groups)
        assert got.shape == expected.shape and torch.allclose(got, expected)


def test_fast_builds_leave_inputs_the_real_convolution_refuses_to_it():
    import torch
    import torch.nn.functional as F

    from bbpatch.verify.checks import shape_only_conv2d

    fast = shape_only_conv2d(F.conv2d)
    with pytest.raises(RuntimeError, match="channels"):
        fast(torch.rand(1, 5, 8, 8), torch.zeros(4, 3, 3, 3))  # 5 input channels, weights for 3
    with pytest.raises(RuntimeError, match="[Kk]ernel size"):
        fast(torch.rand(1, 3, 2, 2), torch.zeros(4, 3, 3, 3))  # a 3x3 kernel on a 2x2 image


def test_fast_builds_batch_norm_to_the_real_output_shape_and_leave_refused_inputs_to_it():
    import torch
    import torch.nn.functional as F

    from bbpatch.verify.checks import fast_build, shape_only_batch_norm

    fast, bn = shape_only_batch_norm(F.batch_norm), torch.nn.BatchNorm2d(4)
    statistics = bn.running_mean, bn.running_var, bn.weight, bn.bias
    for x, training in ((torch.rand(2, 4, 5, 3), True), (torch.rand(1, 4, 1, 1), False), (torch.rand(3, 4), True)):
        assert fast(x, *statistics, training).shape == F.batch_norm(x, *statistics, training).shape
    with pytest.raises(RuntimeError, match="running_mean should contain 5 elements"):
        fast(torch.rand(1, 5, 3, 3), *statistics)  # 5 channels, statistics for 4
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fast(torch.rand(1, 4, 1, 1), *statistics, True)
    batch_norm, reset = F.batch_norm, torch.nn.Conv2d.reset_parameters
    with fast_build():
        assert F.batch_norm is not batch_norm and torch.nn.Conv2d.reset_parameters is not reset
        conv = torch.nn.Conv2d(3, 8, 3)
    assert not conv.weight.any() and not conv.bias.any()
    assert F.batch_norm is batch_norm and torch.nn.Conv2d.reset_parameters is reset


def test_a_fast_build_has_the_strides_and_parameters_of_a_real_one(patched_tree):
    """Every shipped YAML (all heads: YOLO26 end-to-end, seg, pose, OBB, RT-DETR): the same structure either way."""
    code = """
import glob, json
from bbpatch.verify.checks import fast_build, model_class
from bbpatch.verify.plan import describe
found = {}
for path in sorted(glob.glob("ultralytics/nn/Addmodules/yamls/*.yaml")):
    shape = []
    for fast in (False, True):
        with fast_build() if fast else __import__("contextlib").nullcontext():
            model = model_class(describe(path).inputs)(path, verbose=False)
        shape.append([[float(s) for s in model.stride], sum(p.numel() for p in model.parameters()),
                      [type(m).__name__ for m in model.model]])
    found[path] = shape
print(json.dumps(found))
"""
    found = run_json(patched_tree, code)
    assert len(found) >= 80
    for path, (real, fast) in found.items():
        assert fast == real, path


def test_missing_onnx_runtime_is_a_skip_that_says_how_to_install_it(patched_tree, tmp_path):
    hidden = tmp_path / "shim" / "onnxruntime"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('onnxruntime hidden by the test')\n")
    proc = run_cli(
        "verify", str(patched_tree), "--yaml", SMALL_YAMLS[0], "--check", "onnx", "--json",
        env={"PYTHONPATH": str(hidden.parent)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = results_by_key(json.loads(proc.stdout))
    onnx = results[(f"{SMALL_YAMLS[0]}.yaml", "onnx")]
    assert onnx["status"] == "skip" and "pip install 'bbpatch[onnx]'" in onnx["detail"]
    assert results[(f"{SMALL_YAMLS[0]}.yaml", "build")]["status"] == "pass"
    assert (f"{SMALL_YAMLS[0]}.yaml", "train") not in results  # --check keeps only onnx and what it needs


def test_an_unknown_check_name_is_a_usage_error(patched_tree):
    proc = verify(patched_tree, "--check", "no_such_check")
    assert proc.returncode == 2
    assert "no_such_check" in proc.stderr and "onnx" in proc.stderr


def test_an_unknown_format_name_is_a_usage_error(patched_tree):
    proc = verify(patched_tree, "--formats", "onnx,tensorrt")
    assert proc.returncode == 2
    assert "tensorrt" in proc.stderr and "openvino" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_check_of_a_format_left_out_of_formats_is_a_usage_error(patched_tree):
    proc = verify(patched_tree, "--formats", "onnx", "--check", "export_tflite")
    assert proc.returncode == 2
    assert "export_tflite" in proc.stderr and "onnx" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_formats_prove_only_the_chosen_exports_and_the_rest_of_the_gate_runs(patched_tree):
    proc = verify(patched_tree, "--yaml", SMALL_YAMLS[0], "--formats", "onnx", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = results_by_key(json.loads(proc.stdout))
    name = f"{SMALL_YAMLS[0]}.yaml"
    exported = {check for subject, check in results if check.startswith("export_")}
    assert exported == {"export_onnx"} and results[(name, "export_onnx")]["status"] == "pass"
    for check in ("train", "reload", "safe_load", "fuse", "gflops"):
        assert results[(name, check)]["status"] == "pass"


def test_a_worker_that_dies_fails_its_yaml_and_the_rest_still_runs(fresh_tree, tmp_path):
    api.apply(fresh_tree)
    (fresh_tree / "ultralytics" / "nn" / "Addmodules" / "crasher.py").write_text(
        "import os\nfrom torch import nn\n\n\nclass Crasher(nn.Module):\n    bbpatch_role = 'block'\n\n"
        "    def __init__(self, c1, c2):\n        os._exit(7)  # a native crash, as far as verify can tell\n"
    )
    crash = tmp_path / "crash.yaml"
    crash.write_text("nc: 2\nbackbone:\n  - [-1, 1, Crasher, [16]]\nhead:\n  - [[0], 1, Detect, [nc]]\n")
    proc = verify(fresh_tree, "--fast", "--yaml", str(crash), "--yaml", SMALL_YAMLS[0], "--json")
    assert proc.returncode == 1
    results = results_by_key(json.loads(proc.stdout))
    died = results[("crash.yaml", "build")]
    assert died["status"] == "fail" and "worker process died" in died["detail"]
    assert results[(f"{SMALL_YAMLS[0]}.yaml", "build")]["status"] == "pass"


def test_the_fast_build_cache_trusts_nothing_it_reads_and_concurrent_saves_never_fail(tmp_path):
    import threading

    from bbpatch.verify.cache import BuildCache

    file = tmp_path / "verify-fast.json"
    for content in ("[1, 2]", "{not json", '{"k": 3, "ok": "built", "7": null}', "\udcff"):
        file.write_text(content, encoding="utf-8", errors="surrogateescape")
        entries = BuildCache(file).entries
        assert entries == ({"ok": "built"} if "ok" in content else {}), content
    errors = []

    def save_often(n):
        cache = BuildCache(file)
        cache.put(f"key{n}", "built")
        for _ in range(50):
            try:
                cache.save()
            except Exception as error:  # noqa: BLE001 (any of them is the failure)
                errors.append(error)

    threads = [threading.Thread(target=save_often, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads(file.read_text())  # whole JSON, from one of the savers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verify-fast.json"]  # no temp file left
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    BuildCache(tmp_path / "a-file" / "verify-fast.json").save()  # cannot be written: slower next time, no error
