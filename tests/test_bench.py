"""bbpatch bench: a readable PNG and a Markdown table with one measured row per model."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bbpatch.bench import Measurement, markdown_table, pareto_front

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
    ]
    proc = run_cli("bench", str(patched_tree), *[a for m in MODELS for a in ("--yaml", m)], *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    image = np.asarray(Image.open(plot).convert("L"), dtype=float)
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert image.std() > 5  # axes, points and labels drawn, not a blank canvas

    rows = [line for line in table.read_text().splitlines() if line.startswith("| ") and ".yaml" in line]
    assert sorted(r.split("|")[1].strip() for r in rows) == sorted(MODELS)
    for r in rows:
        params, gflops, cpu, fused = (float(c) for c in r.split("|")[2:6])
        assert params > 0 and gflops > 0 and cpu > 0 and fused > 0
    assert any(r.rstrip(" |").endswith("*") for r in rows)  # the Pareto front is marked
    assert table.read_text() in proc.stdout


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
