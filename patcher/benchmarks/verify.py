"""verify wall times, as a user runs it (``bbpatch verify``, a fresh process each time) on a patched copy.

- ``verify --fast`` cold: an empty build cache, several runs                                      [<= 5 s]
- ``verify --fast`` warm: the tree and YAMLs unchanged since the last cold run                     [~1 s]
- ``verify``, every shipped YAML and the export matrix, once (``--no-full`` skips it: minutes)    [<= 60 s]

Targets from issue 11. Wall times include CPU time of every worker process; on a machine shared with other
jobs they stretch with its load, so the bench also prints the load average before and after.

These targets are absolute seconds on the 2-core reference machine, so they only mean something there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bbpatch.benchmarks.engine import copy_of_installed
from bbpatch.tree import installed_package

TARGETS = {"verify --fast, cold": 5.0, "verify, every shipped YAML": 60.0}


def timed_verify(root: Path, cache_home: Path, *options: str) -> float:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    start = time.perf_counter()
    command = [sys.executable, "-m", "bbpatch", "verify", str(root), *options]
    done = subprocess.run(command, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bbpatch verify {' '.join(options)} failed:\n{done.stdout.decode()[-2000:]}")
    return seconds


def measure(root: Path, scratch: Path, rounds: int, full: bool) -> dict[str, list[float]]:
    caches = [scratch / f"cache{i}" for i in range(rounds)]  # a fresh one per cold run
    cold = [timed_verify(root, cache, "--fast") for cache in caches]
    figures = {"verify --fast, cold": cold, "verify --fast, warm": [timed_verify(root, caches[-1], "--fast")]}
    if full:
        figures["verify, every shipped YAML"] = [timed_verify(root, caches[-1])]
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip the full verify run")
    args = parser.parse_args(argv)
    from bbpatch import api

    package = installed_package()
    load = [f"{os.getloadavg()[0]:.2f}"]
    with tempfile.TemporaryDirectory() as temp:
        root = copy_of_installed(Path(temp, "tree"))
        api.apply(root)
        figures = measure(root, Path(temp), args.rounds, args.full)
    print(f"verify wall times, seconds (ultralytics at {package}, {os.cpu_count()} CPUs)")
    print(f"  load average before {load[0]}, after {os.getloadavg()[0]:.2f} (other jobs stretch every figure)")
    for name, runs in figures.items():
        spread = f"median {statistics.median(runs):6.1f}  min {min(runs):6.1f}  max {max(runs):6.1f}"
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  target <= {target:g} s: {'met' if max(runs) <= target else 'NOT met'}"
        print(f"  {name:<28} {spread}  ({len(runs)} runs){verdict}")


if __name__ == "__main__":
    main()
