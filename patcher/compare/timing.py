"""Every exported trial timed in one process, interleaved rounds, 1 thread: ``bbpatch bench``'s own timer
(``bbpatch.benchmarks.latency``'s ``time`` stage), run once over the whole study after training."""

from __future__ import annotations

import json
from pathlib import Path

from bbpatch.benchmarks import latency

from .study import read_json, write_json

TIMING_FILE = "timing.json"
WARMUP = 3


def time_trials(folder: Path, results: dict, root: Path, imgsz: int, runtimes, runs: int) -> dict:
    """``{trial_id: {runtime: median ms}}`` and ``{trial_id: {runtime: why not}}`` for the finished ``results``;
    kept in ``timing.json`` with the trials it timed, so a resumed study times again only when those change."""
    file = folder / TIMING_FILE
    if file.is_file():
        kept = read_json(file)
        if sorted(kept["trials"]) == sorted(results) and kept["runtimes"] == list(runtimes):
            return kept
    work = folder / "timing"
    work.mkdir(exist_ok=True)
    fields = ("kind", "task", "params", "gflops", "exports")
    models = [{**{k: r[k] for k in fields}, "name": t, "path": r["weights"]} for t, r in results.items()]
    listing = work / "models.json"
    listing.write_text(json.dumps(models), encoding="utf-8")
    args = ["--models", str(listing), "--sizes", str(imgsz), "--runtimes", *runtimes, "--runs", str(runs)]
    process = latency.stage(root, work, "time.log", "time", *args, "--warmup", str(WARMUP), threads=1)
    measured = json.loads(latency.collect(process, "timing")[-1])
    at = f"@{imgsz}"
    timing = {
        "trials": sorted(results),
        "runtimes": list(runtimes),
        "latency_ms": {t: {k.removesuffix(at): v for k, v in measured["latency"].get(t, {}).items()} for t in results},
        "errors": {t: {k.removesuffix(at): v for k, v in measured["errors"].get(t, {}).items()} for t in results},
        "versions": measured["versions"],
        "load": measured["load"],
        "runs": runs,
        "warmup": WARMUP,
    }
    write_json(file, timing)
    return timing
