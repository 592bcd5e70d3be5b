"""``make bench``: what ``bbpatch compare`` costs over running the same trials by hand, and what ``--jobs 2`` gains.

The same trials (stock yolov8n, seeds 0..K-1, on a shapes data set made here), three ways, each a fresh
process tree timed by wall clock:

- by hand: ``yolo train`` then ``yolo val`` of its best.pt, trial after trial, with the study's arguments;
- ``bbpatch compare --jobs 1``: the same training and validation, plus what the hand runs do not do (the
  export of each trial and the one timing process), shown apart;                    [study/hand <= 1.05]
- ``bbpatch compare --jobs 2``: two trials at once, the CPUs split between them (the speed-up over --jobs 1).

Every process gets the same threads (``OMP_NUM_THREADS`` = the CPUs a trial gets in that run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bbpatch.benchmarks import print_ratios

from .datasets import shapes

TARGETS = {"study/hand": 1.05}
MODEL = "yolov8n.yaml"


def recipe_args(args) -> list[str]:
    return [f"epochs={args.epochs}", f"imgsz={args.imgsz}", f"batch={args.batch}"]


def timed(command: list[str], env: dict, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "ab") as out:
        subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - started


def threads_env(threads: int) -> dict:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {**os.environ, **{n: str(threads) for n in names}, "MPLBACKEND": "Agg"}


def by_hand(data: Path, work: Path, args) -> float:
    """``yolo train`` then ``yolo val``, one trial after another, as the study's trial process calls them."""
    yolo = str(Path(sys.executable).with_name("yolo"))
    env, log, total = threads_env(os.cpu_count() or 1), work / "hand.log", 0.0
    for seed in range(args.seeds):
        name = f"seed{seed}"
        total += timed([yolo, "train", f"model={MODEL}", f"data={data}", *recipe_args(args), f"seed={seed}",
                        "deterministic=True", "workers=2", "plots=False", f"project={work / 'hand'}", f"name={name}",
                        "exist_ok=True", "device=cpu"], env, log)  # fmt: skip
        best = work / "hand" / name / "weights" / "best.pt"
        total += timed([yolo, "val", f"model={best}", f"data={data}", f"imgsz={args.imgsz}", f"batch={args.batch}",
                        "device=cpu", "plots=False", f"project={work / 'hand'}", f"name={name}-val", "exist_ok=True"],
                       env, log)  # fmt: skip
    return total


def study(data: Path, work: Path, jobs: int, args) -> tuple[float, float, float]:
    """The study's wall time, and within it the seconds its trials spent exporting and the timing process took."""
    out = work / f"study-jobs{jobs}"
    command = [sys.executable, "-m", "bbpatch", "compare", MODEL, "--data", str(data), "--epochs", str(args.epochs),
               "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--seeds", str(args.seeds), "--jobs", str(jobs),
               "--runtimes", "onnxruntime", "--latency-runs", "5", "--out", str(out)]  # fmt: skip
    wall = timed(command, threads_env(max(1, (os.cpu_count() or 1) // jobs)), work / f"study-jobs{jobs}.log")
    ended = time.time()
    trials = [t for t in (out / "trials").iterdir() if t.is_dir()]
    exporting = sum(mtime(t / "exports.json") - mtime(t / "val.json") for t in trials)
    timing = ended - max(mtime(t / "result.json") for t in trials)
    return wall, exporting, timing


def mtime(path: Path) -> float:
    return path.stat().st_mtime


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2, help="trials (stock yolov8n, one seed each)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=32, help="training images of the shapes data set")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bbpatch-compare-bench-") as scratch:
        work = Path(scratch)
        data = shapes(work / "shapes", train=args.images, val=max(4, args.images // 4), size=args.imgsz)
        hand = by_hand(data, work, args)
        one, exporting, timing = study(data, work, 1, args)
        two, _, _ = study(data, work, 2, args)
    title = (f"bbpatch compare over the same trials by hand ({args.seeds} trials of {MODEL}, {args.epochs} epochs at "
             f"{args.imgsz} px, {os.cpu_count()} CPUs, wall time of one run each)")  # fmt: skip
    figures = {
        "study/hand": one / hand,
        "study less export and timing/hand": (one - exporting - timing) / hand,
        "--jobs 2 speed-up over --jobs 1": one / two,
        "  by hand (yolo train, yolo val), s": hand,
        "  bbpatch compare --jobs 1, s": one,
        "    its trials exporting, s": exporting,
        "    its timing process and outputs, s": timing,
        "  bbpatch compare --jobs 2, s": two,
    }
    print_ratios(title, figures, TARGETS)


if __name__ == "__main__":
    main()
