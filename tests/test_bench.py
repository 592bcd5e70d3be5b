"""bbpatch bench: a readable PNG and Markdown tables with one measured row per model; the deployment latency table.

Timings are never asserted: only that every figure is there, positive and finite.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from PIL import Image

from bbpatch.benchmarks import latency
from bbpatch.benchmarks.table import Measurement, markdown_table, pareto_front, scatter_plot

from helpers import run_cli

MODELS = ("yolov8-mobilenetv4.yaml", "yolov5-mobilenetv3-small.yaml", "yolov8n.yaml")


def test_bench_writes_a_readable_plot_and_table(patched_tree, tmp_path):
    plot, table = tmp_path / "bench.png", tmp_path / "bench.md"
    args = [
        "--imgsz",
        "64",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--plot",
        str(plot),
        "--table",
        str(table),
        "--stock",
        "yolov8n.yaml",
        "--sizes",
        "64",
        "--latency-runs",
        "2",
        "--runtimes",
        "onnxruntime",
        "--json",
        str(tmp_path / "bench.json"),
    ]
    proc = run_cli("bench", str(patched_tree), *[a for m in MODELS for a in ("--yaml", m)], *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = table.read_text()
    pytorch, deployment, parity = (section_of(text, title) for title in ("PyTorch", "Deployment", "Export parity"))

    image = np.asarray(Image.open(plot).convert("L"), dtype=float)
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert image.std() > 5  # axes, points and labels drawn, not a blank canvas

    rows = model_rows(pytorch)
    assert sorted(r[0] for r in rows) == sorted(MODELS)  # the stock model named twice is measured once
    for r in rows:
        params, gflops, cpu, fused = (float(c) for c in r[1:5])
        assert params > 0 and gflops > 0 and cpu > 0 and fused > 0
    assert any(r[-1] == "*" for r in rows)  # the Pareto front is marked
    assert text in proc.stdout

    rows = model_rows(deployment)  # model, params, GFLOPs 64, ORT 64 ms, / own stock, faster than
    assert sorted(r[0].strip("*") for r in rows) == sorted(MODELS)
    assert all(float(r[1]) > 0 and float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
    assert "**1 thread**" in deployment and "**64 x 64**" in deployment and "| ORT ms |" in deployment
    assert sorted(r[0] for r in model_rows(parity)) == sorted(MODELS)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert len(saved["pytorch"]) == len(saved["deployment"]["models"]) == len(MODELS)


def section_of(markdown: str, title: str) -> str:
    """The text of the ``## title...`` section of bench.md."""
    sections = {part.split("\n", 1)[0]: part for part in markdown.split("## ")[1:]}
    return next(text for heading, text in sections.items() if heading.startswith(title))


def model_rows(section: str) -> list[list[str]]:
    """The cells of each table row that names a model."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and ".yaml" in line]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_deployment(patched_tree):
    """The latency table code on its smallest configuration: one shipped and one stock model, 64 px, N = 2."""
    from bbpatch.verify import target

    shipped = {p.name: p for p in target.load(patched_tree).yamls()}
    names = ["yolov8n-mobilenetv4.yaml", "yolov8n.yaml"]
    return latency.run(patched_tree, names, sizes=[64], runs=2, warmup=1, shipped=shipped)


def finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_latency_table_measures_every_model_runtime_and_export(tiny_deployment):
    run = tiny_deployment
    assert [m.name for m in run.models] == ["yolov8n-mobilenetv4.yaml", "yolov8n.yaml"]
    assert [m.stock for m in run.models] == [False, True]
    assert run.runtimes == latency.DEFAULT_RUNTIMES and run.sizes == (64,) and run.runs == 2
    for m in run.models:
        assert not m.error and not m.latency_errors, (m.error, m.latency_errors)
        assert finite_positive(m.params) and finite_positive(m.gflops["64"])
        assert set(m.latency) == {"onnxruntime@64", "openvino@64"}
        assert all(finite_positive(ms) for ms in m.latency.values())
        assert [(e.format, e.imgsz) for e in m.exports] == [("onnx", 64), ("openvino", 64)]
        for e in m.exports:
            assert not e.error, e.error
            assert finite_positive(e.export_s)
            assert math.isfinite(e.relative_error) and 0 <= e.relative_error <= e.budget
    assert run.models[0].stock_of_head == "yolov8n.yaml"
    assert run.versions["onnxruntime"] and run.versions["openvino"]


def test_latency_tables_and_plot_show_the_exported_models(tiny_deployment, tmp_path):
    run = tiny_deployment
    table = latency.latency_table(run)
    assert "**1 thread**" in table and "median of 2 interleaved rounds" in table
    rows = model_rows(table)
    assert [r[0] for r in rows].count("**yolov8n.yaml**") == 1  # stock models in bold
    shipped = next(r for r in rows if r[0] == "yolov8n-mobilenetv4.yaml")
    params, gflops, ort, openvino = (float(c) for c in shipped[1:5])
    assert params > 0 and gflops > 0 and ort > 0 and openvino > 0
    assert shipped[5].endswith("x yolov8n")  # its latency relative to the stock model of its head
    assert shipped[6] in ("yolov8n", "-")  # which stock models it beats in every column: a timing, not asserted
    parity = model_rows(latency.parity_table(run))
    assert len(parity) == 2 and all(len(r) == 3 and r[1].endswith(" s") for r in parity)
    plot = tmp_path / "deployment.png"
    scatter_plot([], plot, 64, 1, run)  # exported points only
    image = np.asarray(Image.open(plot).convert("L"), dtype=float)
    assert image.std() > 5
    assert latency.Run.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_default_deployment_set_is_each_family_at_n_on_the_chosen_heads():
    shipped = ["yolov8-mobilenetv4.yaml", "yolov8-seg-mobilenetv4.yaml", "yolo26-fasternet.yaml",
               "yolo26-pose-fasternet.yaml", "yolo12-mobileone.yaml", "yolo11-mobileone.yaml"]  # fmt: skip
    assert latency.default_models(shipped, ("yolo26", "yolo11", "yolov8")) == [
        "yolo26n-fasternet.yaml",
        "yolo11n-mobileone.yaml",
        "yolov8n-mobilenetv4.yaml",
    ]
    assert latency.default_models(shipped) == ["yolo26n-fasternet.yaml", "yolov8n-mobilenetv4.yaml"]


def test_pareto_front_keeps_only_undominated_models():
    results = [
        Measurement("small-fast", params=1, cpu_ms=2, fused_cpu_ms=1),
        Measurement("big-fastest", params=5, cpu_ms=1, fused_cpu_ms=0.5),
        Measurement("dominated", params=6, cpu_ms=3, fused_cpu_ms=2),
        Measurement("broken", error="RuntimeError: x"),
    ]
    assert pareto_front(results) == {"small-fast", "big-fastest"}
    table = markdown_table(results, 640, 1)
    assert "| broken | error: RuntimeError: x" in table
    assert "| dominated |" in table and "| small-fast |" in table


def test_plot_labels_of_a_crowded_cluster_do_not_overlap():
    """Twelve small models within 0.4 M parameters and 1 ms (what the n-scale cluster looks like)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bbpatch.benchmarks.labels import place_labels

    fig, ax = plt.subplots(figsize=(12, 8), dpi=120)
    labels = [(2.5 + 0.03 * i, 15.0 + 0.08 * (i % 5), f"yolo26n-backbone{i}") for i in range(12)]
    labels += [(9.0 + 3 * i, 40.0 + 20 * i, f"yolo26s-backbone{i}") for i in range(6)]
    ax.scatter([x for x, _, _ in labels], [y for _, y, _ in labels])
    fig.tight_layout()
    boxes = place_labels(ax, labels)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    assert len(boxes) == len(labels) == len(ax.texts)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    assert all(frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1 for box in boxes)
    plt.close(fig)


def test_verify_bench_against_a_commit_runs_that_commits_bbpatch(tmp_path):
    """``--against REV``: bbpatch's package as it is at REV, unpacked where PYTHONPATH puts it before this one."""
    import os
    import subprocess
    import sys

    from bbpatch.benchmarks.verify import source_at

    folder = source_at("HEAD", tmp_path)
    assert (folder / "bbpatch" / "verify" / "runtime.py").is_file() and not (folder / "patcher").exists()
    env = {**os.environ, "PYTHONPATH": str(folder)}
    code = "import bbpatch.verify.runtime as r; print(r.__file__)"
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == str(folder / "bbpatch" / "verify" / "runtime.py")
