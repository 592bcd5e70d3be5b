"""``pareto.png``: mAP50-95 against latency, one panel per runtime, error bars from the seeds' range, the front
drawn through the rows ``tables.mark_pareto`` put on it."""

from __future__ import annotations

from pathlib import Path

from bbpatch.benchmarks.latency import RUNTIME

from .tables import Row


def pareto_plot(rows: list[Row], runtimes, path: Path) -> list[dict]:
    """Draw the plot; return what each panel shows (``{runtime, points: [(model, ms, map)], front: [model]}``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    figure, axes = plt.subplots(1, max(1, len(runtimes)), figsize=(6 * max(1, len(runtimes)), 4.5), squeeze=False)
    for ax, runtime in zip(axes[0], runtimes):
        timed = [r for r in rows if r.map50_95 is not None and runtime in r.latency_ms]
        for r in timed:
            low, high = r.map50_95 - r.map50_95_min, r.map50_95_max - r.map50_95
            ax.errorbar(r.latency_ms[runtime], r.map50_95, yerr=[[low], [high]], fmt="o", capsize=3,
                        color="tab:red" if runtime in r.pareto else "tab:blue")  # fmt: skip
            ax.annotate(Path(r.model).stem, (r.latency_ms[runtime], r.map50_95), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        front = sorted((r for r in timed if runtime in r.pareto), key=lambda r: r.latency_ms[runtime])
        if front:
            ax.step([r.latency_ms[runtime] for r in front], [r.map50_95 for r in front], where="post",
                    color="tab:red", alpha=0.6, label="Pareto front")  # fmt: skip
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(f"{RUNTIME[runtime].label} latency (ms, 1 thread)")
        ax.set_ylabel("mAP50-95 (seeds' range)")
        ax.grid(alpha=0.3)
        panels.append({"runtime": runtime, "points": [(r.model, r.latency_ms[runtime], r.map50_95) for r in timed],
                       "front": [r.model for r in front]})  # fmt: skip
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temp, dpi=110)
    plt.close(figure)
    temp.replace(path)
    return panels
