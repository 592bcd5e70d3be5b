"""The export matrix: each shipped backbone family exported to every deployment format, loaded back, compared.

One check per format (``export_torchscript`` ... ``export_coreml``), run on each family's representative
YAML (scope ``export``), in tasks of their own on the calibrated model that YAML's ``forward_eval`` saved
(``calibrated_model``): the formats of the verify venv in a main worker, TFLite and CoreML each in worker
processes of their own venv (``Format.workers``: TFLite two, CoreML one) that export the families in turn
(one interpreter start per process, not one per family). Each exports the model through ultralytics' own
``Exporter``, loads the file back through ultralytics' ``AutoBackend`` (what ``YOLO(path).predict`` runs) and
compares its raw output with the fused PyTorch model's on the same input, within the format's relative error
budget (``Format.budget``, measured on this project's machine with margin; see docs/verify.md).

- OpenVINO is compared in float32: ultralytics' loader leaves OpenVINO's CPU default, bf16 on CPUs with
  AVX512-BF16, which on untrained calibrated weights is off by up to 0.86 (DFL box decoding) and would hide
  a real conversion error. The bf16 figure is reported, not asserted.
- TFLite goes through ultralytics' LiteRT exporter (``litert-torch``), which pins typing_extensions 4.12,
  and CoreML needs numpy <= 2.3.5 (coremltools 9 breaks on numpy 2.4 for YOLO11 heads): each runs in an
  interpreter of its own, ``.venv-tflite`` / ``.venv-coreml`` beside the running venv (``make install``
  creates them) or ``$BBPATCH_TFLITE_PYTHON`` / ``$BBPATCH_COREML_PYTHON``, with the tree first on
  ``sys.path``, on a pickled copy of the model.
- CoreML is conversion only: coremltools cannot run a model on Linux. The check converts and reads the
  saved model's spec back (input and output shapes).

A runtime that is not installed fails the check (the full gate must prove every format); ``verify --fast``
reports it as a skip with the install hint instead (``missing_runtime_results``). Importing this module
is cheap (no torch): the orchestrator reads ``FORMATS``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .checks import output_error
from .registry import CHECKS, Skipped, check
from .results import SKIP, Result

EXPORT_EXTRA = "pip install 'bbpatch[export]'"
ISOLATED_TIMEOUT = 600


@dataclasses.dataclass(frozen=True)
class Format:
    name: str  # the check is export_<name>
    label: str
    modules: tuple  # importable names the exporter and the runtime need
    install: str
    budget: float | None  # largest relative error (see checks.channel_scaled); None: conversion only
    argument: str = ""  # ultralytics' format argument, when it is not ``name``
    venv: str = ""  # a venv of its own (beside the running one) that exports and runs this format
    workers: int = 1  # processes in that venv, at most (one per verify job): for exports much longer than its start

    @property
    def exporter_format(self) -> str:
        return self.argument or self.name

    @property
    def check_name(self) -> str:
        return f"export_{self.name}"

    @property
    def python_variable(self) -> str:
        return f"BBPATCH_{self.name.upper()}_PYTHON"


# Budgets: measured over the eight shipped families (six whole backbones, two block sets) at 128 px on this
# project's 2-CPU machine (docs/verify.md has the figures): TorchScript runs PyTorch's own kernels (0.0
# everywhere); the other runtimes' float32 kernels differ from PyTorch's by up to 1.7e-3 on MobileOne (its
# folded convs carry large weights on random calibrated inputs; 5e-3 on another build), 6e-4 elsewhere. 4x
# margin. A backbone conv 1% off is off by ~0.9; what they cannot see: a head's last DFL conv 5% off (5e-3).
RUNTIME_BUDGET = 2e-2
FORMATS = (
    Format("torchscript", "TorchScript", (), "", 1e-5),
    Format("onnx", "ONNX", ("onnx", "onnxruntime"), EXPORT_EXTRA, RUNTIME_BUDGET),
    Format("openvino", "OpenVINO (f32)", ("openvino",), EXPORT_EXTRA, RUNTIME_BUDGET),
    Format("ncnn", "NCNN", ("ncnn", "pnnx"), EXPORT_EXTRA, RUNTIME_BUDGET),
    Format("tflite", "TFLite", ("litert_torch", "ai_edge_litert"), "make tflite-venv (litert-torch pins "
           "typing_extensions 4.12: a venv of its own)", RUNTIME_BUDGET, argument="litert", venv=".venv-tflite",
           workers=2),  # about 9 s a family against 5 s to start; one process was verify's longest chain
    Format("coreml", "CoreML (conversion only)", ("coremltools",), "make coreml-venv (coremltools needs "
           "numpy <= 2.3.5: a venv of its own)", None, venv=".venv-coreml"),
)  # fmt: skip
BY_NAME = {f.name: f for f in FORMATS}


# ---------------------------------------------------------------- runtimes (no torch)


def missing_modules(fmt: Format, importing: bool = False, in_venv: bool = False) -> list[str]:
    """The modules ``fmt`` needs that the interpreter running it lacks.

    Found without importing (the orchestrator stays torch-free), or, with ``importing``, by importing
    them (a worker: a module that is there but fails to import is missing too). A venv format is looked
    for in its venv, unless ``in_venv``: this interpreter is that venv's.
    """
    if fmt.venv and not in_venv:
        return [] if isolated_python(fmt) else list(fmt.modules)
    return [name for name in fmt.modules if not (importable(name) if importing else importlib.util.find_spec(name))]


def importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@functools.cache
def isolated_python(fmt: Format) -> str | None:
    """The interpreter of ``fmt``'s own venv: $BBPATCH_<NAME>_PYTHON when set, else ``fmt.venv`` beside the
    running venv (what ``make install`` creates), when it has the format's modules."""
    chosen = os.environ.get(fmt.python_variable)
    python = chosen or str(Path(sys.prefix).parent / fmt.venv / "bin" / "python")
    probe = f"import importlib.util, sys; sys.exit(not all(importlib.util.find_spec(n) for n in {list(fmt.modules)!r}))"
    if Path(python).is_file() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return python
    return None


def missing_hint(fmt: Format, importing: bool = False, in_venv: bool = False) -> str:
    missing = missing_modules(fmt, importing, in_venv)
    return f"{', '.join(missing)} not installed: {fmt.install}" if missing else ""


def missing_runtime_results(formats=None) -> list[Result]:
    """For ``verify --fast``: one skip per format (of ``formats``, None: all) whose runtime is missing, saying
    how to install it."""
    return [
        Result("exports", f.check_name, SKIP, f"skipped: {missing_hint(f)} (the full gate fails without it)")
        for f in FORMATS
        if (formats is None or f.name in formats) and missing_modules(f)
    ]


# ---------------------------------------------------------------- export, load back, run (torch)


def export(model, fmt: str, imgsz: int, folder: Path, stem: str, task: str = "detect") -> Path:
    """``model`` through ultralytics' own exporter, as ``yolo export format=FMT`` does; returns the exported path."""
    from ultralytics.engine.exporter import Exporter

    folder.mkdir(parents=True, exist_ok=True)
    model.pt_path = str(folder / f"{stem}.pt")  # the exporter writes next to it, never into the tree
    model.task = getattr(model, "task", None) or task
    args = dict(format=fmt, imgsz=imgsz, device="cpu", batch=1, verbose=False)
    if fmt == "onnx":
        args["simplify"] = False  # the graph as torch exports it (onnxslim is ultralytics' optional extra)
    path = Exporter(overrides=args)(model=model)
    assert path and Path(path).exists(), f"the {fmt} exporter returned {path!r} and wrote nothing there"
    return Path(path)


def load_back(path: Path):
    """The exported file loaded by ultralytics' AutoBackend, what ``YOLO(path).predict`` runs."""
    import torch
    from ultralytics.nn.autobackend import AutoBackend

    return AutoBackend(str(path), device=torch.device("cpu"), fp16=False, verbose=False)


def openvino_in_float32(backend, path: Path):
    """Recompile the loaded IR with a float32 precision hint (OpenVINO's CPU default is bf16 where the CPU has it)."""
    import openvino as ov

    xml = path if path.is_file() else next(path.glob("*.xml"))
    inner = backend.backend
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": ov.Type.f32}
    inner.ov_compiled_model = inner.compile_model(ov.Core().read_model(str(xml)), config=config)


def first_output(out):
    """The prediction tensor of AutoBackend's output (a tensor, an array, or a list of them)."""
    import torch

    while isinstance(out, (list, tuple)):
        out = out[0]
    return torch.as_tensor(out).float()


def run_backend(backend, x):
    import torch

    with torch.no_grad():
        return first_output(backend(x))


def export_and_run(model, fmt: str, x, folder: Path, stem: str, task: str = "detect") -> dict:
    """Export, load back and run on ``x``: ``{"path", "export_s", "output"}`` (OpenVINO: also ``default_output``,
    CoreML: ``inputs`` and ``outputs``, the shapes its spec declares, instead of an output)."""
    start = time.perf_counter()
    path = export(copy.deepcopy(model), fmt, x.shape[-1], folder, stem, task)
    result = {"path": str(path), "export_s": round(time.perf_counter() - start, 2)}
    if fmt == "coreml":
        result["inputs"], result["outputs"] = coreml_spec_shapes(path)
        return result
    backend = load_back(path)
    if fmt == "openvino":
        result["default_output"] = run_backend(backend, x)
        openvino_in_float32(backend, path)
    result["output"] = run_backend(backend, x)
    return result


def fused_reference(model, x):
    """The fused float32 PyTorch model's eval output: what every exporter starts from."""
    import torch

    fused = copy.deepcopy(model).eval().float().fuse(verbose=False)
    with torch.no_grad():
        return first_output(fused(x))


def coreml_spec_shapes(path: Path) -> tuple[list, list]:
    """Input and output shapes declared by a saved CoreML model, read without running it (Linux cannot)."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    inputs = [[i.type.imageType.height, i.type.imageType.width] for i in spec.description.input]
    outputs = [list(o.type.multiArrayType.shape) for o in spec.description.output]
    return inputs, outputs


# ---------------------------------------------------------------- a format's own venv


def run_isolated(fmt: Format, model, x, folder: Path, stem: str, task: str) -> dict:
    """``export_and_run`` in ``fmt``'s own interpreter, on a pickled copy of ``model``, with the same tree."""
    import torch
    import ultralytics

    folder.mkdir(parents=True, exist_ok=True)
    weights, inputs, outputs = folder / f"{stem}-model.pt", folder / f"{stem}-input.pt", folder / f"{stem}-out.pt"
    torch.save({"model": copy.deepcopy(model)}, weights)
    torch.save(x, inputs)
    command = [isolated_python(fmt), "-m", "bbpatch.verify.exports", "--format", fmt.exporter_format]
    command += ["--weights", str(weights), "--input", str(inputs), "--out", str(outputs), "--stem", stem]
    env = dict(os.environ)
    tree = str(Path(ultralytics.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(command + ["--task", task], capture_output=True, text=True, env=env, cwd=folder,
                          timeout=ISOLATED_TIMEOUT)  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"the {fmt.label} export process failed (exit {done.returncode}): {done.stderr[-1500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if outputs.exists():
        result["output"] = torch.load(outputs, weights_only=True)
    return result


def isolated_main(argv=None):
    """``python -m bbpatch.verify.exports --format litert ...``: what ``run_isolated`` runs in a format's venv."""
    parser = argparse.ArgumentParser(prog="python -m bbpatch.verify.exports")
    for name in ("--format", "--weights", "--input", "--out", "--stem", "--task"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    import torch

    messages = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # exporter logs go to stderr; stdout carries the one JSON result line
    model = torch.load(args.weights, weights_only=False)["model"]
    x = torch.load(args.input, weights_only=True)
    result = export_and_run(model, args.format, x, Path(args.out).parent, args.stem, args.task)
    if "output" in result:
        torch.save(result.pop("output"), args.out)
    messages.write(json.dumps(result) + "\n")
    messages.close()


# ---------------------------------------------------------------- the checks


def unsupported_reason(fmt: Format) -> str:
    """Why this ultralytics release cannot export ``fmt`` through the path the check covers ('' when it can)."""
    from ultralytics.engine.exporter import Exporter

    if not hasattr(Exporter, f"export_{fmt.exporter_format}"):
        return f"this ultralytics release has no {fmt.exporter_format} exporter (TFLite went through TensorFlow before)"
    return ""


def in_own_venv(ctx) -> bool:
    """Whether this worker is the format's own interpreter (the plan runs TFLite and CoreML tasks in one)."""
    return bool(ctx.inputs.get("in_venv"))


def calibrated_model(ctx):
    """The task's BatchNorm-calibrated model and input: built in this task, or saved by the YAML's model task."""
    if "model" not in ctx.state:
        path = ctx.inputs.get("export_model")
        if not path or not Path(path).is_file():
            raise Skipped("no calibrated model: the YAML's forward_eval check did not save one")
        import torch

        ctx.state.update(torch.load(path, weights_only=False))  # {"model", "input"}, written by forward_eval
    return ctx.state["model"], ctx.state["input"]


def prepare(ctx, fmt: Format):
    """Fail on a missing runtime, skip on a release without the exporter; the fused reference, computed once."""
    hint = missing_hint(fmt, importing=True, in_venv=in_own_venv(ctx))
    if hint:
        raise AssertionError(hint)
    reason = unsupported_reason(fmt)
    if reason:
        raise Skipped(reason)
    calibrated_model(ctx)
    if "export_reference" not in ctx.state:
        ctx.state["export_reference"] = fused_reference(ctx.state["model"], ctx.state["input"])
    return ctx.state["export_reference"]


def exported(fmt: Format, ctx) -> dict:
    """``fmt``'s export of the task's model, loaded back and run on its input (in ``fmt``'s venv if it has one)."""
    task = ctx.inputs.get("task", "detect")
    model, x, folder = ctx.state["model"], ctx.state["input"], ctx.workdir / fmt.name
    if fmt.venv and not in_own_venv(ctx):
        return run_isolated(fmt, model, x, folder, ctx.stem, task)
    return export_and_run(model, fmt.exporter_format, x, folder, ctx.stem, task)


def compared(ctx, fmt: Format, reference, result) -> tuple:
    got = result["output"]
    assert got.shape == reference.shape, f"{fmt.label} output {tuple(got.shape)}, PyTorch {tuple(reference.shape)}"
    error = output_error(ctx, reference, got)
    assert error <= fmt.budget, f"{fmt.label} differs from PyTorch by {error:.2e} (budget {fmt.budget:.0e})"
    data = {"format": fmt.name, "relative_error": error, "budget": fmt.budget, "export_s": result["export_s"]}
    detail = f"{fmt.label}: relative error {error:.1e} (budget {fmt.budget:.0e}), export {result['export_s']:.1f} s"
    if "default_output" in result:
        data["bf16_relative_error"] = output_error(ctx, reference, result["default_output"])
        detail += f"; ultralytics' default precision here: {data['bf16_relative_error']:.1e}, not compared"
    return detail, data


def run_parity(fmt: Format, ctx):
    reference = prepare(ctx, fmt)
    return compared(ctx, fmt, reference, exported(fmt, ctx))


def run_conversion(fmt: Format, ctx):
    """CoreML: converted, and the saved spec declares the input image and PyTorch's output shape."""
    reference, x = prepare(ctx, fmt), ctx.state["input"]
    result = exported(fmt, ctx)
    inputs, outputs = result["inputs"], result["outputs"]
    assert inputs == [list(x.shape[-2:])], f"{fmt.label} input {inputs}, expected one {list(x.shape[-2:])} image"
    expected = list(reference.shape)
    assert outputs and outputs[0] == expected, f"{fmt.label} outputs {outputs}, PyTorch {expected}"
    data = {"format": fmt.name, "export_s": result["export_s"], "outputs": outputs}
    return f"{fmt.label}: converted in {result['export_s']:.1f} s, output {outputs[0]} (Linux cannot run it)", data


def register():
    """Add the export checks to the registry (once: ``python -m`` runs this module a second time as __main__)."""
    for fmt in [f for f in FORMATS if f.check_name not in {c.name for c in CHECKS}]:
        fn = functools.partial(run_conversion if fmt.budget is None else run_parity, fmt)
        check(fmt.check_name, "export", needs=("forward_train", "forward_eval"))(fn)


register()

if __name__ == "__main__":
    isolated_main()
