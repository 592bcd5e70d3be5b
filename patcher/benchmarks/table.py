"""``bbpatch bench``: parameters, GFLOPs and latency of each model YAML, as a Markdown table and a scatter plot.

The measuring runs in a subprocess with the target tree first on ``sys.path`` (``python -m bbpatch.benchmarks.table
--measure ...``), one model after the other so timings do not compete. This module imports torch only
in that subprocess.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bbpatch.benchmarks.labels import place_labels


@dataclasses.dataclass
class Measurement:
    name: str
    params: int = 0
    gflops: float = 0.0
    cpu_ms: float = 0.0
    fused_cpu_ms: float = 0.0
    gpu_ms: float | None = None
    error: str = ""


# ---------------------------------------------------------------- measuring (subprocess)


def median_latency_ms(model, x, runs, warmup, synchronize=None):
    """Median wall time of one forward pass, after ``warmup`` untimed passes."""
    import torch

    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            model(x)
            if synchronize:
                synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(path, inputs, imgsz, runs, warmup) -> Measurement:
    import copy

    import torch
    from ultralytics.utils.torch_utils import get_flops

    from bbpatch.verify.checks import model_class

    model = model_class(inputs)(path, verbose=False).eval()
    result = Measurement(Path(path).name, sum(p.numel() for p in model.parameters()), get_flops(model, imgsz))
    x = torch.rand(1, 3, imgsz, imgsz)
    result.cpu_ms = median_latency_ms(model, x, runs, warmup)
    fused = copy.deepcopy(model).fuse(verbose=False)
    result.fused_cpu_ms = median_latency_ms(fused, x, runs, warmup)
    if torch.cuda.is_available():
        result.gpu_ms = median_latency_ms(fused.cuda(), x.cuda(), runs, warmup, torch.cuda.synchronize)
    return result


def measure_main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bbpatch.benchmarks.table")
    parser.add_argument("--measure", nargs="+", required=True, help="JSON objects: {path, kind, task}")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # ultralytics logs go to stderr; stdout carries one JSON line per model
    for spec in map(json.loads, args.measure):
        try:
            result = measure(spec["path"], spec, args.imgsz, args.runs, args.warmup)
        except Exception as e:
            result = Measurement(Path(spec["path"]).name, error=f"{type(e).__name__}: {e}")
        out.write(json.dumps(dataclasses.asdict(result)) + "\n")


# ---------------------------------------------------------------- orchestration


def run_measurements(root: Path, models, imgsz, runs, warmup, threads, env=None, on_result=None) -> list[Measurement]:
    """Measure ``models`` (``plan.ModelYaml``) in a subprocess that imports the tree at ``root``."""
    specs = [json.dumps({"path": m.path, **m.inputs}) for m in models]
    command = [
        sys.executable,
        "-m",
        "bbpatch.benchmarks.table",
        "--imgsz",
        str(imgsz),
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
    ]
    command += ["--threads", str(threads), "--measure", *specs]
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    results = []
    for line in process.stdout:
        results.append(Measurement(**json.loads(line)))
        if on_result:
            on_result(results[-1])
    stderr = process.stderr.read()
    if process.wait() != 0 or len(results) != len(models):
        raise RuntimeError(f"the benchmark process failed (exit {process.returncode}):\n{stderr[-3000:]}")
    return results


# ---------------------------------------------------------------- which models, and the deployment tables


def model_names(shipped: dict, names, every: bool, stock, heads=None) -> list[str]:
    """What a bench run measures: ``names`` (``--yaml``), or every shipped YAML (``--all``), or by default the
    deployment set (the n detection model of each shipped family on ``heads``: YOLO26 and YOLOv8);
    then the ``stock`` models (yolo26n, yolo11n, yolov8n), once each."""
    from bbpatch.benchmarks import latency

    chosen = list(names) or (sorted(shipped) if every else latency.default_models(shipped, heads or latency.HEADS))
    return list(dict.fromkeys([*chosen, *stock]))


def pareto_front(results: list[Measurement]) -> set:
    """Names of the models no other model beats on both parameters and latency."""
    ok = [r for r in results if not r.error]
    return {
        r.name
        for r in ok
        if not any(
            o.params <= r.params
            and o.fused_cpu_ms <= r.fused_cpu_ms
            and (o.params, o.fused_cpu_ms) != (r.params, r.fused_cpu_ms)
            for o in ok
        )
    }


def markdown_table(results: list[Measurement], imgsz: int, threads: int) -> str:
    gpu = any(r.gpu_ms is not None for r in results)
    front = pareto_front(results)
    header = [
        "model",
        "params (M)",
        f"GFLOPs @{imgsz}",
        "CPU ms",
        "CPU fused ms",
        *(["GPU ms"] if gpu else []),
        "Pareto",
    ]
    load = f", load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    lines = [
        f"Batch 1, {imgsz}x{imgsz}, median latency, {threads} CPU threads{load}.",
        "",
        row(header),
        row(["---"] * len(header)),
    ]
    for r in sorted(results, key=lambda r: (bool(r.error), r.fused_cpu_ms)):
        if r.error:
            lines.append(row([r.name, f"error: {r.error}", *[""] * (len(header) - 2)]))
            continue
        cells = [r.name, f"{r.params / 1e6:.2f}", f"{r.gflops:.1f}", f"{r.cpu_ms:.1f}", f"{r.fused_cpu_ms:.1f}"]
        cells += [f"{r.gpu_ms:.2f}" if r.gpu_ms is not None else "-"] if gpu else []
        lines.append(row([*cells, "*" if r.name in front else ""]))
    return "\n".join(lines) + "\n"


def row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def front_of(points: list[tuple]) -> list[tuple]:
    """The (params, ms, ...) points no other point beats on both, by parameters."""
    return sorted(
        (p for p in points if not any(o[0] <= p[0] and o[1] <= p[1] and o[:2] != p[:2] for o in points)),
        key=lambda p: p[0],
    )


def exported_series(deployment, imgsz: int) -> tuple[int, list[tuple[str, list[tuple]]]]:
    """The deployment latencies at the size nearest ``imgsz``: (size, [(label, [(params M, ms, name, stock)])])."""
    from bbpatch.benchmarks import latency

    size = min(deployment.sizes, key=lambda s: (abs(s - imgsz), -s))
    series = []
    for runtime in deployment.runtimes:
        column = latency.key(runtime, size)
        points = [
            (m.params / 1e6, m.latency[column], m.name, m.stock)
            for m in deployment.models
            if not m.error and column in m.latency
        ]
        series.append((f"{latency.runtime_label(deployment, runtime)}, 1 thread, {size} px", points))
    return size, series


EXPORTED_STYLES = (("tab:green", "^"), ("tab:orange", "D"), ("tab:purple", "v"), ("tab:brown", "P"))


def scatter_plot(results: list[Measurement], file: Path, imgsz: int, threads: int, deployment=None):
    """Fused CPU latency against parameters, every point labelled, the Pareto front drawn and ringed.

    With a ``deployment`` run (``bbpatch.benchmarks.latency.Run``), its exported models' latencies at the size
    nearest ``imgsz`` are drawn too, one colour and marker per runtime, each with its own Pareto front (dashed);
    stock models are drawn as black-edged squares in every series.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if not r.error]
    front = pareto_front(ok)
    fig, ax = plt.subplots(figsize=(12, 8), dpi=120)
    ax.scatter(
        [r.params / 1e6 for r in ok],
        [r.fused_cpu_ms for r in ok],
        s=22,
        color="tab:blue",
        zorder=2,
        label=f"PyTorch fused, {threads} thread{'s' if threads != 1 else ''}, {imgsz} px",
    )
    latencies = [r.fused_cpu_ms for r in ok]
    labelled = {r.name for r in ok}
    labels = [(r.params / 1e6, r.fused_cpu_ms, Path(r.name).stem) for r in ok]
    if deployment is not None:
        stock_names = {m.name for m in deployment.models if m.stock}
        stock = [r for r in ok if r.name in stock_names]
        ax.scatter([r.params / 1e6 for r in stock], [r.fused_cpu_ms for r in stock], s=60, marker="s",
                   facecolors="none", edgecolors="black", lw=1.0, zorder=3)  # fmt: skip
        _, series = exported_series(deployment, imgsz)
        for (label, points), (color, marker) in zip(series, EXPORTED_STYLES):
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=26, color=color, marker=marker, zorder=2,
                       label=label)  # fmt: skip
            stock = [p for p in points if p[3]]
            ax.scatter([p[0] for p in stock], [p[1] for p in stock], s=60, marker="s", facecolors="none",
                       edgecolors="black", lw=1.0, zorder=3)  # fmt: skip
            edge = front_of(points)
            ax.plot([p[0] for p in edge], [p[1] for p in edge], "--", color=color, lw=1.0, zorder=1)
            latencies += [p[1] for p in points]
            for params, ms, name, _ in points:
                if name not in labelled:  # each model named once, at its first point
                    labelled.add(name)
                    labels.append((params, ms, Path(name).stem))
        ax.scatter([], [], s=60, marker="s", facecolors="none", edgecolors="black", label="stock model")
    edge = sorted((r for r in ok if r.name in front), key=lambda r: r.params)
    ax.plot([r.params / 1e6 for r in edge], [r.fused_cpu_ms for r in edge], "-", color="tab:red", lw=1.2, zorder=1)
    ax.scatter(
        [r.params / 1e6 for r in edge],
        [r.fused_cpu_ms for r in edge],
        s=90,
        facecolors="none",
        edgecolors="tab:red",
        lw=1.5,
        zorder=3,
        label="Pareto front" if deployment is None else "Pareto front (PyTorch)",
    )
    if latencies and max(latencies) > 20 * min(latencies):
        ax.set_yscale("log")  # one slow outlier would squash every other point to the axis
    ax.set_xlabel("parameters (M)")
    if deployment is None:
        ax.set_ylabel(f"fused CPU latency, batch 1, {imgsz}x{imgsz} (ms, median)")
        ax.set_title(f"bbpatch bench: latency vs parameters ({len(ok)} models, {threads} CPU threads)")
    else:
        ax.set_ylabel("CPU latency, batch 1 (ms, median)")
        ax.set_title(f"bbpatch bench: latency vs parameters ({len(labelled)} models; PyTorch front solid, "
                     "exported fronts dashed)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    ax.set_xlim(ax.get_xlim())  # freeze the limits: labels are placed in pixels
    ax.set_ylim(ax.get_ylim())
    place_labels(ax, labels)
    fig.savefig(file)
    plt.close(fig)


if __name__ == "__main__":
    measure_main()
