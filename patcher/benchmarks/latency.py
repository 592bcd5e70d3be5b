"""Deployment latency: shipped backbone models beside stock yolo26n, yolo11n and yolov8n, exported and timed on CPU.

For each model: parameters, GFLOPs at each size, and for each export format and size the export time and the
exported model's relative error against the fused PyTorch model (``bbpatch.verify.exports``: ultralytics' own
exporter, loaded back through ``AutoBackend``, compared as ``verify`` compares); then CPU latency in ONNX
Runtime and OpenVINO (float32) at 320 and 640, every model and runtime of one size loaded in **one process,
one thread**, timed in interleaved rounds (each round runs every session once, in alternating order, so drift
in machine load hits every model alike), median of N rounds after untimed warm-up rounds.

Two stages, each in subprocesses that put the ultralytics tree first on ``sys.path``:

1. ``python -m bbpatch.benchmarks.latency export ...``: ``jobs`` workers share the models (build, BatchNorm
   calibrated on a random batch as ``verify`` does, GFLOPs, exports, parity), one JSON line per model;
2. ``python -m bbpatch.benchmarks.latency time ...``: one process times every exported model, after the
   exporters have exited (nothing else of bbpatch's runs beside it).

``bbpatch bench`` calls ``run``; ``python -m bbpatch.benchmarks.latency`` (``make bench``) measures the
default set on a patched copy of the installed ultralytics and prints the tables. Latencies are only
comparable within one run on an otherwise idle machine; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STOCK = ("yolo26n.yaml", "yolo11n.yaml", "yolov8n.yaml")
HEADS = ("yolo26", "yolov8")  # by default, the shipped detection model of each family on these heads at scale n
SIZES = (320, 640)
RUNS = 20
WARMUP = 3
FORMATS = ("onnx", "openvino")  # exported and compared by default (what the default runtimes run)
THREADS = 1
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclasses.dataclass(frozen=True)
class Runtime:
    name: str  # the --runtimes value
    label: str  # the column heading
    format: str  # the export format it runs ("" for PyTorch itself)


RUNTIMES = (
    Runtime("onnxruntime", "ORT", "onnx"),
    Runtime("openvino", "OpenVINO f32", "openvino"),
    Runtime("openvino-default", "OpenVINO default precision", "openvino"),
    Runtime("torch", "PyTorch fused", ""),
)
RUNTIME = {r.name: r for r in RUNTIMES}
DEFAULT_RUNTIMES = ("onnxruntime", "openvino")


@dataclasses.dataclass
class Export:
    format: str
    imgsz: int
    path: str = ""
    export_s: float | None = None
    relative_error: float | None = None  # None: conversion only (CoreML) or failed
    budget: float | None = None
    error: str = ""


@dataclasses.dataclass
class ModelResult:
    name: str  # as ultralytics loads it: yolov8n-mobilenetv4.yaml, yolo26n.yaml
    path: str  # what the worker builds (the same name, or a file)
    kind: str = "yolo"
    task: str = "detect"
    stock: bool = False
    params: int = 0
    gflops: dict = dataclasses.field(default_factory=dict)  # {"320": GFLOPs}
    exports: list = dataclasses.field(default_factory=list)  # [Export]
    latency: dict = dataclasses.field(default_factory=dict)  # {"onnxruntime@320": ms}
    latency_errors: dict = dataclasses.field(default_factory=dict)  # {"onnxruntime@320": why there is no figure}
    error: str = ""

    @property
    def inputs(self) -> dict:
        return {"kind": self.kind, "task": self.task}

    @property
    def stock_of_head(self) -> str | None:
        """The stock model of the same head and scale: yolov8n.yaml for yolov8n-mobilenetv4.yaml (and yolov8-...)."""
        match = re.match(r"(yolo(?:v\d+|\d+))([nslmx]?)[-.]", self.name)  # no letter: ultralytics' first, n
        return f"{match.group(1)}{match.group(2) or 'n'}.yaml" if match else None

    def export(self, fmt: str, imgsz: int) -> Export | None:
        return next((e for e in self.exports if e.format == fmt and e.imgsz == imgsz), None)

    @classmethod
    def from_dict(cls, data: dict) -> ModelResult:
        data = dict(data)
        data["exports"] = [Export(**e) for e in data.get("exports", [])]
        return cls(**data)


@dataclasses.dataclass
class Run:
    """Everything one run measured, and how."""

    models: list  # [ModelResult]
    sizes: tuple
    runtimes: tuple  # runtime names
    formats: tuple
    runs: int
    warmup: int
    jobs: int = 1  # export processes
    versions: dict = dataclasses.field(default_factory=dict)  # runtime and library versions, CPU
    seconds: dict = dataclasses.field(default_factory=dict)  # {"export": wall s, "time": wall s}
    load: float | None = None  # 1-minute load average when timing ended

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Run:
        data = dict(data)
        data["models"] = [ModelResult.from_dict(m) for m in data["models"]]
        for key in ("sizes", "runtimes", "formats"):
            data[key] = tuple(data[key])
        return cls(**data)


# ---------------------------------------------------------------- which models


def scaled_name(shipped: str, scale: str = "n") -> str:
    """``yolov8-mobilenetv4.yaml`` -> ``yolov8n-mobilenetv4.yaml`` (ultralytics' scale convention)."""
    return re.sub(r"^(yolo(?:v\d+|\d+))(-)", rf"\g<1>{scale}\2", shipped, count=1)


def default_models(shipped_names, heads=HEADS, scale: str = "n") -> list[str]:
    """The detection model of every shipped backbone family on each of ``heads``, at ``scale``, head by head."""
    names = []
    for head in heads:
        pattern = re.compile(rf"^{re.escape(head)}-([a-z0-9]+)\.yaml$")  # detection only: no -seg/-pose/-obb
        names += sorted(scaled_name(n, scale) for n in shipped_names if pattern.match(n))
    return names


def describe(name: str, shipped: dict | None = None) -> ModelResult:
    """A model by name: a shipped YAML at a scale (``yolo26n-fasternet.yaml``), a shipped file, or a stock name."""
    from bbpatch.verify import plan

    shipped = shipped or {}
    file = shipped.get(re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name))  # the unified file of a scaled name
    described = plan.describe(str(file) if file else name)
    result = ModelResult(
        name=Path(name).name,
        path=name,
        kind=described.kind,
        task=described.task,
        stock=file is None and not Path(name).is_file(),
    )
    if Path(name).is_file():  # the workers run elsewhere
        result.path = str(Path(name).resolve())
    return result


# ---------------------------------------------------------------- stage 1: build, GFLOPs, export, parity (worker)


def calibrated(model, imgsz):
    """BatchNorm statistics taken from one random batch, as verify's export checks use the model."""
    import torch

    from bbpatch.verify.checks import calibrating_batchnorm, sample_input

    momenta = {m: m.momentum for m in model.modules() if hasattr(m, "momentum")}
    calibrating_batchnorm(model)
    model.train()
    try:
        with torch.no_grad():
            model(sample_input(imgsz, batch=2))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
    return model.eval()


def export_model(result: ModelResult, sizes, formats, workdir: Path) -> ModelResult:
    """Build, calibrate, count, and export ``result``'s model to each format at each size, comparing each export."""
    from types import SimpleNamespace

    from ultralytics.utils.torch_utils import get_flops

    from bbpatch.verify import exports
    from bbpatch.verify.checks import model_class, output_error, probe_size, sample_input

    model = model_class(result.inputs)(result.path, verbose=False)
    result.params = sum(p.numel() for p in model.parameters())
    result.gflops = {str(size): float(get_flops(model, size)) for size in sizes}
    stem = Path(result.name).stem
    for size in sizes:
        # BatchNorm statistics from images of the size compared: calibrated at 128 px and run at 320, random
        # weights saturate (scores at 1, boxes at thousands of pixels) and float32 noise shows as 0.1 .. 0.7
        calibrated(model, max(size, probe_size(model)))
        x = sample_input(size)
        reference = exports.fused_reference(model, x)
        for name in formats:
            fmt = exports.BY_NAME[name]
            record = Export(name, size, budget=fmt.budget)
            result.exports.append(record)
            hint = exports.missing_hint(fmt, importing=True)
            if hint:
                record.error = hint
                continue
            ctx = SimpleNamespace(inputs=result.inputs, state={"model": model, "input": x},
                                  workdir=workdir / str(size), stem=stem)  # fmt: skip
            try:
                out = exports.exported(fmt, ctx)
            except Exception as e:  # one format failing on one model is a table cell, not the end of the run
                record.error = one_line(e)
                continue
            record.path, record.export_s = out["path"], out["export_s"]
            if "output" in out:
                got = out["output"]
                if got.shape != reference.shape:
                    record.error = f"output {tuple(got.shape)}, PyTorch {tuple(reference.shape)}"
                else:
                    record.relative_error = output_error(ctx, reference, got)
    return result


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def export_main(args):
    import torch

    torch.set_num_threads(max(1, args.threads))
    out = quiet_stdout()
    for data in map(json.loads, args.model):
        result = ModelResult.from_dict(data)
        try:
            export_model(result, args.sizes, args.formats, Path(args.workdir))
        except Exception as e:
            result.error = one_line(e)
        out.write(json.dumps(dataclasses.asdict(result)) + "\n")


def quiet_stdout():
    """stdout for our JSON lines only: what ultralytics and the exporters print goes to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


# ---------------------------------------------------------------- stage 2: timing (one process)


def session(runtime: str, model: ModelResult, imgsz: int):
    """A callable that runs ``model`` once at ``imgsz`` in ``runtime`` on one thread (a fixed random input)."""
    import numpy as np

    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    spec = RUNTIME[runtime]
    if spec.format:
        record = model.export(spec.format, imgsz)
        if record is None or not record.path:
            raise LookupError(f"no {spec.format} export" + (f" ({record.error})" if record and record.error else ""))
        path = Path(record.path)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = THREADS
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        return lambda: sess.run(None, feed)
    if runtime.startswith("openvino"):
        import openvino as ov

        xml = path if path.is_file() else next(path.glob("*.xml"))
        config = {"INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        if runtime == "openvino":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        core = ov.Core()
        request = core.compile_model(core.read_model(str(xml)), "CPU", config).create_infer_request()
        return lambda: request.infer({0: x})
    import torch

    from bbpatch.verify.checks import model_class

    fused = calibrated(model_class(model.inputs)(model.path, verbose=False), 128).fuse(verbose=False)
    tensor = torch.from_numpy(x)

    def forward():
        with torch.inference_mode():
            fused(tensor)

    return forward


def interleaved_medians(runners: dict, runs: int, warmup: int) -> dict:
    """``{key: median ms}``: every runner once per round, the order reversed every other round."""
    keys = list(runners)
    times = {key: [] for key in keys}
    for round_ in range(warmup + runs):
        for key in keys if round_ % 2 == 0 else reversed(keys):
            start = time.perf_counter()
            runners[key]()
            if round_ >= warmup:
                times[key].append((time.perf_counter() - start) * 1000)
    return {key: statistics.median(values) for key, values in times.items()}


def versions() -> dict:
    found = {}
    for module in ("onnxruntime", "openvino", "torch", "ultralytics"):
        try:
            found[module] = __import__(module).__version__
        except Exception:
            continue
    try:
        import openvino as ov

        precision = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
        found["openvino_default_precision"] = (
            precision.to_string() if hasattr(precision, "to_string") else str(precision)
        )
    except Exception:
        pass
    found["cpu"] = cpu_name()
    found["cpus"] = os.cpu_count()
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def time_main(args):
    import torch

    torch.set_num_threads(THREADS)
    out = quiet_stdout()
    models = [ModelResult.from_dict(m) for m in json.loads(Path(args.models).read_text())]
    latency, errors = {}, {}
    for size in args.sizes:  # one size at a time: every session of that size loaded together, then released
        runners = {}
        for model in (m for m in models if not m.error):
            for runtime in args.runtimes:
                key = (model.name, f"{runtime}@{size}")
                try:
                    runners[key] = session(runtime, model, size)
                except Exception as e:
                    errors[key] = one_line(e)
        for key, run in list(runners.items()):  # a session that cannot run is a cell, not the end of the run
            try:
                run()
            except Exception as e:
                errors[key] = one_line(e)
                del runners[key]
        latency.update(interleaved_medians(runners, args.runs, args.warmup))
        runners.clear()
    result = {"latency": {}, "errors": {}, "versions": versions(), "load": os.getloadavg()[0]}
    for (name, key), ms in latency.items():
        result["latency"].setdefault(name, {})[key] = ms
    for (name, key), why in errors.items():
        result["errors"].setdefault(name, {})[key] = why
    out.write(json.dumps(result) + "\n")


# ---------------------------------------------------------------- orchestration (no torch in this process)


def tree_env(root: Path) -> dict:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return env


def stage(root: Path, workdir: Path, log: str, *args: str, threads: int | None = None) -> subprocess.Popen:
    """A stage's process; its stderr (ultralytics' and the exporters' logs) goes to ``workdir/log``, not a pipe
    that a busy sibling could fill and stall on."""
    env = tree_env(root)
    if threads == 1:
        env.update(THREAD_ENV)
    command = [sys.executable, "-m", "bbpatch.benchmarks.latency", *args]
    with open(workdir / log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=workdir)
    process.log = workdir / log
    return process


def collect(process: subprocess.Popen, what: str) -> list[str]:
    out, _ = process.communicate()
    if process.returncode != 0:
        err = process.log.read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(f"the {what} process failed (exit {process.returncode}):\n{err[-3000:]}")
    return [line for line in out.splitlines() if line.strip()]


def run(
    root: Path, names, sizes=SIZES, runtimes=DEFAULT_RUNTIMES, formats=FORMATS, runs=RUNS, warmup=WARMUP,
    jobs=None, workdir=None, shipped=None, on_progress=None,
) -> Run:  # fmt: skip
    """Export and time the models ``names`` (scaled shipped names, files or stock names) on the tree at ``root``.

    ``shipped`` maps the tree's shipped YAML names (``yolov8-mobilenetv4.yaml``) to their files;
    ``on_progress(message)`` hears each stage.
    """
    sizes, runtimes = tuple(sizes), tuple(runtimes)
    unknown = [r for r in runtimes if r not in RUNTIME]
    if unknown:
        raise ValueError(f"unknown runtime {', '.join(unknown)}; runtimes: {', '.join(RUNTIME)}")
    needed = [RUNTIME[r].format for r in runtimes if RUNTIME[r].format]
    formats = tuple(dict.fromkeys([*needed, *formats]))  # what the runtimes run, then any others asked for
    models = [describe(n, shipped) for n in dict.fromkeys(names)]
    jobs = max(1, min(jobs or min(2, os.cpu_count() or 1), len(models) or 1))
    notify = on_progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="bbpatch-latency-") as temp:
        folder = Path(workdir or temp).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        notify(f"exporting {len(models)} models to {', '.join(formats)} at {', '.join(map(str, sizes))} px "
               f"in {jobs} processes")  # fmt: skip
        start = time.perf_counter()
        common = ["--sizes", *map(str, sizes), "--formats", *formats, "--workdir", str(folder)]
        workers = [
            stage(
                root,
                folder,
                f"export-{i}.log",
                "export",
                *common,
                "--threads",
                str(max(1, (os.cpu_count() or 1) // jobs)),
                "--model",
                *[json.dumps(dataclasses.asdict(m)) for m in models[i::jobs]],
            )  # fmt: skip
            for i in range(jobs)
        ]
        exported = {}
        for worker in workers:
            for line in collect(worker, "export"):
                result = ModelResult.from_dict(json.loads(line))
                exported[result.name] = result
        models = [exported[m.name] for m in models]
        export_s = time.perf_counter() - start
        notify(f"timing {len(models)} models x {len(runtimes)} runtimes x {len(sizes)} sizes, "
               f"{warmup} + {runs} interleaved rounds, 1 thread")  # fmt: skip
        listing = folder / "models.json"
        listing.write_text(json.dumps([dataclasses.asdict(m) for m in models]))
        start = time.perf_counter()
        timer = stage(root, folder, "time.log", "time", "--models", str(listing), "--sizes", *map(str, sizes),
                      "--runtimes", *runtimes, "--runs", str(runs), "--warmup", str(warmup), threads=1)  # fmt: skip
        timing = json.loads(collect(timer, "timing")[-1])
    for m in models:
        m.latency = timing["latency"].get(m.name, {})
        m.latency_errors = timing["errors"].get(m.name, {})
    return Run(models, sizes, runtimes, formats, runs, warmup, jobs, timing["versions"],
               {"export": round(export_s, 1), "time": round(time.perf_counter() - start, 1)},
               timing["load"])  # fmt: skip


# ---------------------------------------------------------------- tables


def key(runtime: str, size: int) -> str:
    return f"{runtime}@{size}"


def beats(model: ModelResult, other: ModelResult, columns) -> bool:
    """Faster than ``other`` in every latency column both have (and at least one)."""
    shared = [c for c in columns if c in model.latency and c in other.latency]
    return bool(shared) and all(model.latency[c] < other.latency[c] for c in shared)


def deployed_columns(run: Run, size: int) -> list[str]:
    """The columns a "faster than" verdict reads: the exported runtimes at ``size`` (PyTorch only if alone)."""
    exported = [key(r, size) for r in run.runtimes if RUNTIME[r].format]
    return exported or [key(r, size) for r in run.runtimes]


def runtime_label(run: Run, runtime: str) -> str:
    label = RUNTIME[runtime].label
    if runtime == "openvino-default" and run.versions.get("openvino_default_precision"):
        label = f"OpenVINO {run.versions['openvino_default_precision'].lower()} (default)"
    return label


def latency_table(run: Run) -> str:
    """One table per size, fastest first by its first runtime; stock models in bold; which stock models each beats."""
    lines = [describe_run(run)]
    for size in run.sizes:
        lines += ["", f"**{size} x {size}**", "", *size_table(run, size)]
    problems = [f"- {m.name} {c}: {why}" for m in run.models for c, why in m.latency_errors.items()]
    if problems:
        lines += ["", "Not timed:", *problems]
    return "\n".join(lines) + "\n"


def size_table(run: Run, size: int) -> list[str]:
    columns = [key(r, size) for r in run.runtimes]
    verdict = deployed_columns(run, size)
    stock = {m.name: m for m in run.models if m.stock and not m.error}
    first = columns[0] if columns else None
    header = ["model", "params (M)", f"GFLOPs {size}", *[f"{runtime_label(run, r)} ms" for r in run.runtimes]]
    header += [f"/ own stock ({RUNTIME[run.runtimes[0]].label})" if first else "/ stock",
               "faster than (" + ", ".join(runtime_label(run, c.split("@")[0]) for c in verdict) + ")"]  # fmt: skip
    lines = [row(header), row(["---"] * len(header))]
    order = sorted(run.models, key=lambda m: (bool(m.error), m.latency.get(first, math.inf)))
    for m in order:
        name = f"**{m.name}**" if m.stock else m.name
        if m.error:
            lines.append(row([name, f"error: {m.error}", *[""] * (len(header) - 2)]))
            continue
        cells = [name, f"{m.params / 1e6:.2f}", gflops(m.gflops.get(str(size), 0))]
        cells += [f"{m.latency[c]:.1f}" if c in m.latency else "n/a" for c in columns]
        own = stock.get(m.stock_of_head or "")
        ratio = (
            m.latency.get(first, 0) / own.latency[first]
            if own and first in own.latency and first in m.latency
            else None
        )
        cells.append("" if m.stock or ratio is None else f"{ratio:.2f}x {Path(own.name).stem}")
        beaten = [Path(s.name).stem for s in stock.values() if s is not m and beats(m, s, verdict)]
        cells.append(", ".join(beaten) or ("-" if not m.stock else ""))
        lines.append(row(cells))
    return lines


def gflops(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def describe_run(run: Run) -> str:
    v = run.versions
    parts = [
        f"CPU latency in ms, batch 1, median of {run.runs} interleaved rounds after {run.warmup} warm-up rounds, "
        f"**1 thread**, every model and runtime of one size in one process",
        f"ONNX Runtime {v.get('onnxruntime', '?')} (CPU provider, intra/inter-op threads 1)",
        f"OpenVINO {str(v.get('openvino', '?')).split('-')[0]} (INFERENCE_NUM_THREADS 1, LATENCY hint; "
        f"f32 = INFERENCE_PRECISION_HINT f32, this CPU's default is {v.get('openvino_default_precision', '?')})",
        f"{v.get('cpu', 'CPU')}, {v.get('cpus', '?')} CPUs"
        + (f", load average {run.load:.1f} at the end" if run.load is not None else ""),
        f"ultralytics {v.get('ultralytics', '?')}, torch {v.get('torch', '?')}",
    ]  # fmt: skip
    return "; ".join(parts) + "."


def parity_table(run: Run) -> str:
    """One row per model: each export's relative error against the fused PyTorch model, and its export time."""
    from bbpatch.verify.exports import BY_NAME

    columns = [(f, s) for f in run.formats for s in run.sizes]
    header = ["model", *[f"{BY_NAME[f].label} {s}" for f, s in columns]]
    budgets = ", ".join(f"{BY_NAME[f].label} {BY_NAME[f].budget:.0e}" for f in run.formats if BY_NAME[f].budget)
    lines = [
        "Relative error of each export against the fused float32 PyTorch model on one random image (each output "
        f"channel divided by its largest magnitude, at least 1; budgets as in verify: {budgets or 'none'}), "
        "and its export time (ultralytics' exporter, "
        f"{'one at a time' if run.jobs == 1 else f'{run.jobs} export processes sharing the CPUs'}); random "
        "weights with calibrated BatchNorm.",
        "",
        row(header),
        row(["---"] * len(header)),
    ]
    worst = {}
    for m in run.models:
        if m.error:
            lines.append(row([m.name, f"error: {m.error}", *[""] * (len(header) - 2)]))
            continue
        cells = [m.name]
        for f, s in columns:
            e = m.export(f, s)
            cells.append(export_cell(e))
            if e and e.relative_error is not None:
                worst[f] = max(worst.get(f, 0.0), e.relative_error)
        lines.append(row(cells))
    if worst:
        lines += ["", "Largest error: " + ", ".join(f"{BY_NAME[f].label} {e:.1e}" for f, e in worst.items()) + "."]
    return "\n".join(lines) + "\n"


def export_cell(e: Export | None) -> str:
    if e is None:
        return "-"
    if e.error:
        return f"error: {e.error[:120]}"
    seconds = f"{e.export_s:.1f} s" if e.export_s is not None else ""
    if e.relative_error is None:
        return f"converted, {seconds}"
    over = " **over budget**" if e.budget is not None and e.relative_error > e.budget else ""
    return f"{e.relative_error:.1e}{over}, {seconds}"


def row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def summary(run: Run) -> str:
    """Which shipped models beat which stock ones (in every exported runtime, at every size), in words."""
    columns = [c for size in run.sizes for c in deployed_columns(run, size)]
    stock = [m for m in run.models if m.stock and not m.error]
    runtimes = ", ".join(dict.fromkeys(runtime_label(run, c.split("@")[0]) for c in columns))
    sizes = " and ".join(map(str, run.sizes))
    lines = []
    for m in (m for m in run.models if not m.stock and not m.error):
        beaten = [Path(s.name).stem for s in stock if beats(m, s, columns)]
        if beaten:
            lines.append(f"- {Path(m.name).stem} is faster than {', '.join(beaten)}")
    if not lines:
        return f"No model here is faster than any of the stock models in {runtimes} at {sizes} px."
    return f"Faster than a stock model in every one of {runtimes} at {sizes} px:\n\n" + "\n".join(lines)


# ---------------------------------------------------------------- command lines


def stage_main(argv):
    parser = argparse.ArgumentParser(prog="python -m bbpatch.benchmarks.latency")
    sub = parser.add_subparsers(dest="stage", required=True)
    export = sub.add_parser("export")
    export.add_argument("--model", nargs="+", required=True)
    export.add_argument("--sizes", nargs="+", type=int, required=True)
    export.add_argument("--formats", nargs="+", required=True)
    export.add_argument("--workdir", required=True)
    export.add_argument("--threads", type=int, default=1)
    timing = sub.add_parser("time")
    timing.add_argument("--models", required=True)
    timing.add_argument("--sizes", nargs="+", type=int, required=True)
    timing.add_argument("--runtimes", nargs="+", required=True)
    timing.add_argument("--runs", type=int, required=True)
    timing.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args(argv)
    (export_main if args.stage == "export" else time_main)(args)


def csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv=None):
    """``make bench``: the default set on a patched copy of the installed ultralytics, tables printed."""
    if argv is None and len(sys.argv) > 1 and sys.argv[1] in ("export", "time"):
        return stage_main(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--yaml", type=csv, action="extend", default=[], help="models (default: the n detection "
                        "model of every shipped family on the --heads)")  # fmt: skip
    parser.add_argument(
        "--heads",
        type=csv,
        default=list(HEADS),
        help="heads of the default set (comma-separated; default yolo26,yolov8)",
    )
    parser.add_argument("--stock", type=csv, default=list(STOCK), help="stock models beside them")
    parser.add_argument("--sizes", type=lambda v: [int(s) for s in csv(v)], default=list(SIZES))
    parser.add_argument("--runtimes", type=csv, default=list(DEFAULT_RUNTIMES), help=f"of {', '.join(RUNTIME)}")
    parser.add_argument("--formats", type=csv, default=list(FORMATS), help="exports compared ('all': every format)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--jobs", type=int, help="export processes (default: 2 or the CPU count, if fewer)")
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument("--markdown", help="also write the tables here")
    args = parser.parse_args(argv)
    from bbpatch import api
    from bbpatch.benchmarks.engine import copy_of_installed
    from bbpatch.verify import target

    with tempfile.TemporaryDirectory() as temp:
        root = copy_of_installed(Path(temp, "tree"))
        api.apply(root)
        shipped = {p.name: p for p in target.load(root).yamls()}
        names = [*(args.yaml or default_models(shipped, args.heads)), *args.stock]
        formats = all_formats() if args.formats == ["all"] else args.formats
        result = run(root, names, args.sizes, args.runtimes, formats, args.runs, args.warmup, args.jobs,
                     workdir=Path(temp, "work"), shipped=shipped,
                     on_progress=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    text = deployment_markdown(result)
    print(f"deployment latency (ultralytics {result.versions.get('ultralytics')}; export {result.seconds['export']} s, "
          f"timing {result.seconds['time']} s)\n\n{text}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text)


def all_formats() -> list[str]:
    from bbpatch.verify.exports import FORMATS as EXPORT_FORMATS

    return [f.name for f in EXPORT_FORMATS]


def deployment_markdown(deployment) -> str:
    """The deployment sections of bench.md: latency table, which shipped models beat which stock ones, parity."""
    return (
        "## Deployment latency: ONNX Runtime and OpenVINO, 1 thread\n\n"
        f"{latency_table(deployment)}\n{summary(deployment)}\n\n"
        f"## Export parity and export time\n\n{parity_table(deployment)}"
    )


if __name__ == "__main__":
    main()
