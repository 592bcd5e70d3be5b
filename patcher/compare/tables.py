"""The study's outputs from its trials: one row a trial and one a candidate, the Pareto front, honest claims;
``compare.json``, ``compare.csv`` and ``compare.md`` (``plot`` draws ``pareto.png`` from the same rows).

Spread: a candidate's seeds' range (highest minus lowest mAP50-95). "A beats B" only where A's mean is above
B's by more than the larger of the two spreads; else "within noise"; and no claim at all where a candidate has
fewer than two finished seeds (no spread known).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import asdict, dataclass, field

from bbpatch.benchmarks.latency import RUNTIME

from .study import DONE, Study


@dataclass
class Row:
    model: str
    start: str
    seeds: int  # finished trials
    trials: int
    params: int | None = None
    gflops: float | None = None
    map50_95: float | None = None  # mean over the finished seeds
    map50_95_min: float | None = None
    map50_95_max: float | None = None
    map50: float | None = None
    latency_ms: dict = field(default_factory=dict)  # runtime -> median of the seeds' medians
    train_s_per_epoch: float | None = None
    pareto: list = field(default_factory=list)  # runtimes on whose front it is
    failures: list = field(default_factory=list)  # "trial: reason"

    @property
    def spread(self) -> float | None:
        return None if self.map50_95 is None else self.map50_95_max - self.map50_95_min


def trial_rows(study: Study, results: dict, timing: dict) -> list[dict]:
    """One dict a trial: what scripts read (``compare.json``'s ``trials``)."""
    rows = []
    for trial, entry in study.trials.items():
        r = results.get(trial, {})
        done = r.get("status") == DONE
        rows.append({
            "trial": trial, "model": entry["model"], "seed": entry["seed"], "status": r.get("status", entry["state"]),
            "reason": r.get("reason", entry.get("reason", "")), "start": study.candidate(entry["model"]).start,
            "weights": r.get("weights") if done else None, "map50_95": r.get("map50_95"), "map50": r.get("map50"),
            "precision": r.get("precision"), "recall": r.get("recall"), "params": r.get("params"),
            "gflops": (r.get("gflops") or {}).get(str(study.recipe.imgsz)),
            "latency_ms": timing.get("latency_ms", {}).get(trial, {}) if done else {},
            "latency_errors": timing.get("errors", {}).get(trial, {}) if done else {},
            "train_s_per_epoch": r.get("train_s_per_epoch"), "resumed_from_epoch": r.get("resumed_from_epoch"),
        })  # fmt: skip
    return rows


def candidate_rows(study: Study, trials: list[dict]) -> list[Row]:
    rows = []
    for candidate in study.candidates:
        mine = [t for t in trials if t["model"] == candidate.name]
        done = [t for t in mine if t["status"] == DONE]
        row = Row(candidate.name, candidate.start, len(done), len(mine))
        row.failures = [f"{t['trial']}: {t['reason'] or t['status']}" for t in mine if t["status"] != DONE]
        if done:
            maps = [t["map50_95"] for t in done]
            row.params, row.gflops = done[0]["params"], done[0]["gflops"]
            row.map50_95, row.map50_95_min, row.map50_95_max = statistics.fmean(maps), min(maps), max(maps)
            row.map50 = statistics.fmean(t["map50"] for t in done)
            runtimes = dict.fromkeys(r for t in done for r in t["latency_ms"])
            row.latency_ms = {r: statistics.median(t["latency_ms"][r] for t in done if r in t["latency_ms"])
                              for r in runtimes}  # fmt: skip
            epochs = [t["train_s_per_epoch"] for t in done if t["train_s_per_epoch"] is not None]
            row.train_s_per_epoch = statistics.fmean(epochs) if epochs else None
        rows.append(row)
    mark_pareto(rows, study.recipe.runtimes)
    return rows


def mark_pareto(rows: list[Row], runtimes) -> None:
    """A row is on a runtime's front when no other row is at least as accurate and as fast, and better in one."""
    for runtime in runtimes:
        timed = [r for r in rows if r.map50_95 is not None and runtime in r.latency_ms]
        for r in timed:
            if not any(dominates(o, r, runtime) for o in timed if o is not r):
                r.pareto.append(runtime)


def dominates(a: Row, b: Row, runtime: str) -> bool:
    ta, tb = a.latency_ms[runtime], b.latency_ms[runtime]
    return a.map50_95 >= b.map50_95 and ta <= tb and (a.map50_95 > b.map50_95 or ta < tb)


# ---------------------------------------------------------------- claims


def verdict(a: Row, b: Row) -> str:
    """'beats', 'loses', 'within noise', or 'no spread known' for A against B (mAP50-95 over seeds)."""
    if a.seeds < 2 or b.seeds < 2:
        return "no spread known"
    difference, noise = a.map50_95 - b.map50_95, max(a.spread, b.spread)
    if difference > noise:
        return "beats"
    if -difference > noise:
        return "loses"
    return "within noise"


def claims(rows: list[Row]) -> list[str]:
    """The summary's lines: each pair once, the better mean first."""
    finished = sorted((r for r in rows if r.seeds), key=lambda r: -r.map50_95)
    if len(finished) < 2:
        return ["Fewer than two candidates finished: nothing to compare."]
    if all(r.seeds < 2 for r in finished):
        return ["One seed per candidate: no spread is known, so no difference here can be told from noise "
                "(run with --seeds 2 or more)."]  # fmt: skip
    lines = []
    for i, a in enumerate(finished):
        for b in finished[i + 1 :]:
            said = verdict(a, b)
            diff = a.map50_95 - b.map50_95
            if said == "beats":
                lines.append(f"{a.model} beats {b.model}: mAP50-95 +{diff:.3f}, more than either's spread over "
                             f"seeds ({a.spread:.3f}, {b.spread:.3f})")  # fmt: skip
            elif said == "within noise":
                lines.append(f"{a.model} vs {b.model}: within noise ({diff:+.3f}; spreads {a.spread:.3f}, "
                             f"{b.spread:.3f})")  # fmt: skip
            else:
                lines.append(f"{a.model} vs {b.model}: no spread known (a candidate has one finished seed)")
    return lines


def warnings(rows: list[Row]) -> list[str]:
    starts = sorted({r.start for r in rows})
    if len(starts) < 2:
        return []
    by = "; ".join(f"{s}: {', '.join(r.model for r in rows if r.start == s)}" for s in starts)
    return [f"The candidates start from different initialisations ({by}): that, not the backbone, is then most "
            "of the difference."]  # fmt: skip


# ---------------------------------------------------------------- files


def to_json(study: Study, trials: list[dict], rows: list[Row], timing: dict) -> dict:
    return {
        "recipe": study.recipe.to_dict(),
        "data_sha256": study.data_sha256,
        "versions": {**study.versions, **{k: v for k, v in timing.get("versions", {}).items() if k != "ultralytics"}},
        "trials": trials,
        "candidates": [{**asdict(r), "spread": r.spread} for r in rows],
        "claims": claims(rows),
        "warnings": warnings(rows),
        "timing": {k: timing.get(k) for k in ("runs", "warmup", "load")},
    }


CSV_FIELDS = ("kind", "model", "trial", "seed", "status", "start", "map50_95", "map50_95_min", "map50_95_max",
              "map50", "params", "gflops", "train_s_per_epoch", "weights", "reason")  # fmt: skip


def to_csv(trials: list[dict], rows: list[Row], runtimes) -> str:
    out = io.StringIO()
    fields = [*CSV_FIELDS, *[f"latency_ms_{r}" for r in runtimes]]
    writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for t in trials:
        writer.writerow({**t, "kind": "trial", **{f"latency_ms_{r}": t["latency_ms"].get(r) for r in runtimes}})
    for r in rows:
        data = {**asdict(r), "kind": "candidate", "reason": "; ".join(r.failures)}
        writer.writerow({**data, **{f"latency_ms_{k}": r.latency_ms.get(k) for k in runtimes}})
    return out.getvalue()


def number(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def map_cell(r: Row) -> str:
    if r.map50_95 is None:
        return "-"
    if r.seeds < 2:
        return f"{r.map50_95:.3f} (1 seed)"
    return f"{r.map50_95:.3f} ({r.map50_95_min:.3f}-{r.map50_95_max:.3f}, {r.seeds} seeds)"


def to_markdown(study: Study, rows: list[Row], timing: dict, trials: list[dict]) -> str:
    recipe, runtimes = study.recipe, study.recipe.runtimes
    header = ["model", "start", "params (M)", f"GFLOPs {recipe.imgsz}", "mAP50-95 mean (range)", "mAP50",
              *[f"{RUNTIME[r].label} ms" for r in runtimes], "train s/epoch", "Pareto front"]  # fmt: skip
    lines = [
        f"Trained with ultralytics' trainer on {recipe.data}: {recipe.epochs} epochs, imgsz {recipe.imgsz}, "
        f"batch {recipe.batch}, {recipe.seeds} seed(s), deterministic"
        + (", " + ", ".join(f"{k}={v}" for k, v in recipe.train.items()) if recipe.train else "")
        + f"; mAP from ultralytics' validator on best.pt (val split). Latency: median of {timing.get('runs', '?')} "
        f"interleaved rounds, 1 thread, every trial in one process, batch 1 at {recipe.imgsz} px.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        if not r.seeds:
            reason = r.failures[0] if r.failures else "not run"
            lines.append("| " + " | ".join([r.model, r.start, f"failed: {reason}", *[""] * (len(header) - 3)]) + " |")
            continue
        cells = [r.model, r.start, number(r.params / 1e6, 2), number(r.gflops, 2), map_cell(r), number(r.map50),
                 *[number(r.latency_ms.get(k), 1) for k in runtimes], number(r.train_s_per_epoch, 1),
                 ", ".join(RUNTIME[k].label for k in r.pareto) or "-"]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    resumed = [t for t in trials if t.get("resumed_from_epoch")]
    if resumed:
        which = ", ".join(f"{t['trial']} after epoch {t['resumed_from_epoch']}" for t in resumed)
        lines += ["", "Resumed after an interruption by ultralytics' resume from last.pt (its checkpoint keeps the "
                  "EMA and optimizer in float16 and no random states: not bit-identical to an uninterrupted run): "
                  f"{which}."]  # fmt: skip
    failed = [f for r in rows if r.seeds for f in r.failures]
    if failed:
        lines += ["", "Failed trials:", *[f"- {f}" for f in failed]]
    lines += ["", "## Summary", "", *[f"- {c}" for c in claims(rows)]]
    lines += [f"- Warning: {w}" for w in warnings(rows)]
    return "\n".join(lines) + "\n"
