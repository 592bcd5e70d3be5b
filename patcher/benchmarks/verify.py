"""verify wall times, as a user runs it (``bbpatch verify``, a fresh process each time) on a patched copy.

- ``verify --fast`` cold: an empty build cache, several runs                             [median <= 5 s]
- ``verify --fast`` warm: the tree and YAMLs unchanged since the last cold run                     [~1 s]
- ``verify``, every shipped YAML and the export matrix of all six formats, once            [at its CPU floor]
- ``verify --formats onnx,openvino``: the same gate proving the CPU deployment formats only [at its CPU floor]
- ``verify --formats none``: the same gate without the export matrix                       [at its CPU floor]

(``--no-full`` skips the last three: minutes. ``--against REV``: the cold ``--fast`` runs alternate with the same
runs of bbpatch as it was at that git commit, and the ratios are printed: on a shared machine the side-by-side
ratio means more than either wall time.) Each row also gives the CPU seconds of every process verify ran
(user + system). The full gate's budget is its CPU floor: on N CPUs its wall time cannot go below CPU / N, and
it must stay within 5% of that (wall <= 1.05 x CPU / N), i.e. keep every CPU busy to the end. ``--fast`` cold
has an absolute budget, 5 s on the 2-core reference machine. Wall times stretch with the machine's load, so
the bench prints the load average before and after.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bbpatch.benchmarks.engine import copy_of_installed
from bbpatch.engine.tree import installed_package

FULL_RUNS = {
    "verify, all six export formats": (),
    "verify --formats onnx,openvino": ("--formats", "onnx,openvino"),
    "verify --formats none": ("--formats", "none"),
}
FAST_COLD_TARGET = 5.0
FLOOR_MARGIN = 1.05  # full gate: wall <= 1.05 x CPU seconds / CPUs


def timed_verify(root: Path, cache_home: Path, *options: str, source: Path | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, every process verify started) of one verify run
    (``source``: a folder whose ``bbpatch`` package runs instead of this one)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH", "")) if p)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, "-m", "bbpatch", "verify", str(root), *options]
    done = subprocess.run(command, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bbpatch verify {' '.join(options)} failed:\n{done.stdout.decode()[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(root: Path, scratch: Path, rounds: int, full: bool) -> dict[str, list[tuple[float, float]]]:
    caches = [scratch / f"cache{i}" for i in range(rounds)]  # a fresh one per cold run
    cold = [timed_verify(root, cache, "--fast") for cache in caches]
    figures = {"verify --fast, cold": cold, "verify --fast, warm": [timed_verify(root, caches[-1], "--fast")]}
    if full:
        for name, options in FULL_RUNS.items():
            figures[name] = [timed_verify(root, caches[-1], *options)]
    return figures


def source_at(revision: str, folder: Path) -> Path:
    """bbpatch's package (``patcher/`` in the checkout) at a git ``revision``, unpacked as ``folder/bbpatch``."""
    checkout = Path(__file__).resolve().parents[2]
    archive = subprocess.run(
        ["git", "-C", str(checkout), "archive", revision, "patcher"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "patcher").rename(folder / "bbpatch")
    return folder


def side_by_side(root: Path, scratch: Path, rounds: int, revision: str) -> dict[str, list[tuple[float, float]]]:
    """Cold ``--fast`` runs of this bbpatch and of ``revision``'s, alternating, each with an empty build cache."""
    base = source_at(revision, scratch / "against")
    new, old = [], []
    for i in range(rounds):
        new.append(timed_verify(root, scratch / f"new{i}", "--fast"))
        old.append(timed_verify(root, scratch / f"old{i}", "--fast", source=base))
    return {"verify --fast, cold": new, f"verify --fast, cold at {revision}": old}


def print_ratios_against(figures: dict, revision: str) -> None:
    (new, old) = [figures[name] for name in ("verify --fast, cold", f"verify --fast, cold at {revision}")]
    wall = statistics.median(w for w, _ in new) / statistics.median(w for w, _ in old)
    cpu = statistics.median(c for _, c in new) / statistics.median(c for _, c in old)
    print(f"  --fast cold, this / {revision}: wall {wall:.2f}, CPU {cpu:.2f} (medians, runs alternating)")


def budget_verdict(name: str, walls: list[float], cpus: list[float]) -> str:
    if name == "verify --fast, cold":
        met = "met" if statistics.median(walls) <= FAST_COLD_TARGET else "NOT met"
        return f"  target: median <= {FAST_COLD_TARGET:g} s: {met}"
    if name not in FULL_RUNS:
        return ""
    floor = statistics.median(cpus) / (os.cpu_count() or 1)
    ratio = statistics.median(walls) / floor
    met = "met" if ratio <= FLOOR_MARGIN else "NOT met"
    return f"  wall / CPU floor {ratio:.2f} (target <= {FLOOR_MARGIN}): {met}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip the full verify run")
    parser.add_argument("--against", metavar="REV", help="also time --fast cold with bbpatch at this git commit")
    args = parser.parse_args(argv)
    from bbpatch import api

    package = installed_package()
    load = [f"{os.getloadavg()[0]:.2f}"]
    with tempfile.TemporaryDirectory() as temp:
        root = copy_of_installed(Path(temp, "tree"))
        api.apply(root)
        if args.against:
            figures = side_by_side(root, Path(temp), args.rounds, args.against)
        else:
            figures = measure(root, Path(temp), args.rounds, args.full)
    print(f"verify wall times, seconds (ultralytics at {package}, {os.cpu_count()} CPUs)")
    print(f"  load average before {load[0]}, after {os.getloadavg()[0]:.2f} (other jobs stretch every figure)")
    for name, runs in figures.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        spread = f"median {statistics.median(walls):6.1f}  min {min(walls):6.1f}  max {max(walls):6.1f}"
        cpu = f"CPU {statistics.median(cpus):6.1f}"
        verdict = budget_verdict(name, walls, cpus)
        print(f"  {name:<32} {spread}  {cpu}  ({len(runs)} runs){verdict}")
    if args.against:
        print_ratios_against(figures, args.against)


if __name__ == "__main__":
    main()
