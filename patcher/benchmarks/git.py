"""The merge driver's cost, side by side with apply in one run, as a user's git runs them (a fresh process each).

- ``bbpatch merge-file`` on nn/tasks.py / ``bbpatch apply`` on the same release              [<= 2]

The merge: base = the installed release's tasks.py, ours = it patched plus a function of the user's,
theirs = it with an upstream-like change (a rewritten import); the same three files every round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bbpatch.benchmarks import print_ratios
from bbpatch.benchmarks.engine import copy_of_installed, timed

TARGET = 2.0
USER_LINES = "\n\ndef my_helper():\n    return 42\n"


def merge_inputs(folder: Path, patched_tasks: bytes, stock_tasks: bytes) -> list[str]:
    theirs = stock_tasks.replace(b"import torch\n", b"import torch  # upstream\n", 1)
    sides = {"base": stock_tasks, "ours": patched_tasks + USER_LINES.encode(), "theirs": theirs}
    for name, data in sides.items():
        (folder / name).write_bytes(data)
    return [str(folder / name) for name in sides]


def measure(scratch: Path, rounds: int) -> dict[str, float]:
    from bbpatch import api

    cli = [sys.executable, "-m", "bbpatch"]
    stock = copy_of_installed(scratch / "stock") / "ultralytics" / "nn" / "tasks.py"
    patched_root = copy_of_installed(scratch / "patched")
    api.apply(patched_root)
    patched = (patched_root / "ultralytics" / "nn" / "tasks.py").read_bytes()
    applies, merges = [], []
    for index in range(rounds):  # interleaved, so drifts of the machine's speed hit both alike
        root = copy_of_installed(scratch / f"apply{index}")
        applies.append(timed([*cli, "apply", str(root)]))
        base, ours, theirs = merge_inputs(scratch, patched, stock.read_bytes())
        merges.append(timed([*cli, "merge-file", base, ours, theirs, "--path", "ultralytics/nn/tasks.py"]))
    apply_s, merge_s = statistics.median(applies), statistics.median(merges)
    return {"apply_s": apply_s, "merge-file tasks.py_s": merge_s, "merge-file/apply": merge_s / apply_s}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        figures = measure(Path(temp), args.rounds)
    ratios = {name: TARGET for name in figures if "/" in name}
    print_ratios(f"git merge driver benchmark (median of {args.rounds} interleaved rounds)", figures, ratios)


if __name__ == "__main__":
    main()
