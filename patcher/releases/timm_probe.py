"""One timm model through every step of the timm sweep, in one process: ``python -m bbpatch.releases.timm_probe
MODEL BASE...``, run by :mod:`bbpatch.releases.timm_sweep` with a patched ultralytics tree first on ``sys.path``
and a scratch folder as the working directory.

For each base (``yolov8n.yaml``, ``rtdetr-l.yaml``): the YAML ``bbpatch yaml --base BASE --backbone timm:MODEL``
writes (the library call the command is a thin layer over), then verify's own runtime checks on it, in verify's
order: build, a train-mode forward and backward at batch 2, an eval forward at ``IMGSZ``, the maps at the
strides the head expects, ultralytics' GFLOPs at 640, and the ONNX export compared with PyTorch in onnxruntime.
Each step prints a marker line before it starts and each base one result line (JSON), so the sweep can tell
which step a killed or crashed process was in.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import traceback
from pathlib import Path

MARKER = "bbpatch-timm-sweep: "
IMGSZ = 320
TORCH = str(Path(importlib.util.find_spec("torch").origin).parent)
STEPS = ("yaml", "build", "train_step", "eval_forward", "strides", "gflops", "onnx")


def bbpatch_sources(tree):
    """Folders of bbpatch's own code: the tool, and the modules as installed and as shipped into the tree."""
    modules = importlib.util.find_spec("bbpatch.modules").submodule_search_locations
    shipped = Path(tree).resolve() / "ultralytics" / "nn" / "Addmodules"
    return (str(Path(__file__).resolve().parents[1]), *map(str, modules), str(shipped))


def emit(kind, **fields):
    print(MARKER + json.dumps({"kind": kind, **fields}), flush=True)


def is_refusal(error, sources):
    """bbpatch's own one-line refusal (a ValueError/KeyError it raised itself), not a crash somewhere below it."""
    if not isinstance(error, (ValueError, KeyError)):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(sources)


def first_line(error):
    """The exception's first line; for one without a message (a bare ``assert``), the line that raised it."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = (message.strip().splitlines() or [""])[0]
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(TORCH)] or [None]
    if not text and frames[-1]:  # torch's own frames (torch._assert) only pass the caller's condition on
        text = f"{frames[-1].line} ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return f"{type(error).__name__}: {text}"[:300]


def derive_yaml(base, model_name, workdir, tree):
    from bbpatch.models import yamlgen

    path = workdir / f"{Path(base).stem}-timm-{model_name}.yaml"
    path.write_text(yamlgen.derive(base, f"timm:{model_name}", tree=tree), encoding="utf-8")
    return path


def gflops(model):
    """ultralytics' own figure (what ``model.info()`` prints), at 640; None where it cannot profile the model."""
    from ultralytics.utils.torch_utils import get_flops

    value = get_flops(model.eval(), 640)
    return round(value, 2) if value else None


def check_steps(ctx):
    """(step name, function) in run order: verify's checks on ``ctx``, the probe size set to ``IMGSZ``."""
    from bbpatch.verify import checks

    def build(ctx):
        checks.build(ctx)
        ctx.imgsz = IMGSZ

    return (
        ("build", build),
        ("train_step", checks.forward_train),
        ("eval_forward", checks.forward_eval),
        ("strides", checks.strides),
        ("gflops", lambda ctx: ctx.outputs.update(gflops=gflops(ctx.state["model"]))),
        ("onnx", checks.onnx_export),
    )


def probe(model_name, base, tree, sources):
    """The result row of one base: ``outcome`` ok / refused / failed, the ``step`` and its one-line ``reason``."""
    from bbpatch.verify import checks

    kind = "rtdetr" if Path(base).name.startswith("rtdetr") else "yolo"
    row = dict(base=base, outcome="ok", step="", reason="", params=None, gflops=None)
    with tempfile.TemporaryDirectory(prefix="bbpatch-timm-probe-") as temp:
        workdir, step, ctx = Path(temp), "yaml", None
        try:
            emit("step", base=base, step=step)
            yaml_path = derive_yaml(base, model_name, workdir, tree)
            ctx = checks.Context(yaml_path.name, str(yaml_path), {"kind": kind}, workdir, workdir, IMGSZ)
            for step, run in check_steps(ctx):
                emit("step", base=base, step=step)
                run(ctx)
        except Exception as error:  # every failure is a row: the step and its first line
            outcome = "refused" if is_refusal(error, sources) else "failed"
            row.update(outcome=outcome, step=step, reason=first_line(error))
        if ctx is not None:
            row.update(params=ctx.outputs.get("params"), gflops=ctx.outputs.get("gflops"))
    return row


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    model_name, tree, bases = argv[0], argv[1], argv[2:]
    import torch

    torch.set_num_threads(1)
    sources = bbpatch_sources(tree)
    for base in bases:
        emit("row", **probe(model_name, base, tree, sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
