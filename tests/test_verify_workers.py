"""verify's worker processes: the zygote's lighter preload for ``--fast`` (no ``torch._dynamo``) loses nothing.

- in a real interpreter, ``preload(compiler=False)`` imports torch, torchvision and timm without
  ``torch._dynamo``; what the deferral stood in for still works and then uses the real module;
- ``verify --fast`` (workers forked from that zygote) reports the same results, build for build and with the
  same details, as the same tasks run in a plain worker interpreter that imported everything the usual way;
- a failure or a crash in a forked worker is reported and named: ``test_verify.py``'s
  ``test_a_yaml_that_does_not_build_is_named_with_the_check`` and
  ``test_a_worker_that_dies_fails_its_yaml_and_the_rest_still_runs`` run ``--fast``, i.e. this zygote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bbpatch.verify import core, runner
from bbpatch.verify import plan as planning
from bbpatch.verify.dataset import offline_environment

from helpers import run_cli

# an RT-DETR head, a YOLO segmentation head on a timm backbone, a layer-by-layer backbone of bbpatch blocks
YAMLS = ("rtdetr-mobilenetv4.yaml", "yolo11-seg-fasternet.yaml", "yolov5-mobileone-blocks.yaml")

DEFERRED = """
import sys
from bbpatch.verify.preload import preload
preload(compiler=False)
assert "torch._dynamo" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
assert all(m in sys.modules for m in ("torch", "torchvision", "timm", "cv2"))
import torch, torchvision, timm
from torchvision.ops import roi_align
x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
boxes = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0], [1, 0.5, 2.0, 7.5, 7.0]])
got = roi_align(x, boxes, output_size=(3, 3), spatial_scale=1.0, sampling_ratio=2, aligned=True)
kernel = torch.ops.torchvision.roi_align(x, boxes, 1.0, 3, 3, 2, True)
assert torch.equal(got, kernel)
deferred = sys.modules["torchvision.ops.roi_align"].is_compile_supported  # what it asks on CUDA and MPS
assert "torch._dynamo" not in sys.modules
answers = [deferred(device) for device in ("cpu", "cuda", "meta")]
from torch._dynamo.utils import is_compile_supported  # imported by the first call: the real module
assert answers == [is_compile_supported(device) for device in ("cpu", "cuda", "meta")]
assert hasattr(sys.modules["torch._dynamo"], "optimize") and torch.compiler.disable.__module__ == "torch.compiler"

from timm.layers.typing import disable_compiler  # timm's @torch.compiler.disable, taken while it was deferred
calls = []
@disable_compiler
def double(value):
    calls.append(value)
    return 2 * value
assert double(21) == 42 and calls == [21] and double.__name__ == "double"
compiled = torch.compile(lambda t: double(t) + 1, backend="eager")
assert torch.equal(compiled(torch.ones(2)), torch.full((2,), 3.0)) and len(calls) == 2  # still a graph break

model = timm.create_model("naflexvit_base_patch16_gap", pretrained=False, num_classes=0, depth=1)
assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 768)
print("ok")
"""


def test_the_fast_preload_leaves_out_torch_dynamo_and_what_it_deferred_still_works():
    done = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


STEP_ASIDE = """
import sys
from bbpatch.verify.preload import compiler_deferred
with compiler_deferred():
    from torch._dynamo.utils import is_compile_supported  # what torchvision reads at import: the stand-in's
    assert "torch._dynamo" not in sys.modules or type(sys.modules["torch._dynamo"]).__name__ == "StandIn"
    import torch._dynamo
    config = torch._dynamo.config  # anything else: the real module, imported there and then
assert type(sys.modules["torch._dynamo"]).__name__ == "module" and config is sys.modules["torch._dynamo.config"]
assert is_compile_supported("cpu") in (True, False)
print("ok")
"""


def test_code_that_reaches_for_torch_dynamo_while_it_is_deferred_gets_the_real_module():
    done = subprocess.run([sys.executable, "-c", STEP_ASIDE], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def plain_worker_results(tree, tasks, scratch):
    """The tasks run by one fresh worker interpreter (no zygote, nothing deferred): ``{(subject, check): result}``."""
    (scratch / "tasks").mkdir(parents=True)
    command = runner.runtime_command(scratch, scratch / "data.yaml") + ["--tree", str(tree.parent)]
    env = {**os.environ, **offline_environment(scratch / "config")}
    lines = "".join(json.dumps({**t.message(), "broken": []}) + "\n" for t in tasks)
    done = subprocess.run(command, input=lines, capture_output=True, text=True, cwd=scratch, env=env)
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert messages[0]["type"] == "ready", done.stderr[-3000:]
    return {(m["subject"], m["check"]): m for m in messages if m["type"] == "result"}


def test_fast_results_from_forked_workers_equal_a_plain_workers(patched_tree, tmp_path):
    package = patched_tree / "ultralytics"
    names = [name.removesuffix(".yaml") for name in YAMLS]
    patched = core.load(patched_tree)
    models = [planning.describe(p, patched.roles()) for p in core.resolve_yamls(patched, names)]
    tasks = planning.plan(models, fast=True)
    assert sorted(t.subject for t in tasks) == sorted(YAMLS) and all(t.checks == ["build"] for t in tasks)
    plain = plain_worker_results(package, tasks, tmp_path / "plain")

    args = [arg for name in names for arg in ("--yaml", name)]
    proc = run_cli("verify", str(patched_tree), "--fast", "--no-cache", "--jobs", "2", "--json", *args)
    report = json.loads(proc.stdout)
    forked = {(r["subject"], r["check"]): r for r in report["results"] if r["check"] == "build"}
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert forked.keys() == plain.keys() == {(name, "build") for name in YAMLS}
    for key, result in plain.items():
        assert result["status"] == forked[key]["status"] == "pass", (key, result, forked[key])
        assert result["detail"] == forked[key]["detail"], key  # layers and parameters, from the same build
