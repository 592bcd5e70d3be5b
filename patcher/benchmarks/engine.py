"""Engine benchmarks, measured side by side in one run and printed as ratios (targets in brackets).

- apply wall time / a floor process that imports libcst, parses and prints the same two files   [<= 1.5]
- revert wall time / apply wall time                                                              [<= 0.5]
- stock yolov8n on the patched vs the unpatched tree, interleaved: forward latency               [<= 1.01]
  and build time                                                                                  [<= 1.05]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bbpatch.catalog import package_dir

FLOOR = "import sys, libcst\nfor f in sys.argv[1:]:\n    libcst.parse_module(open(f, 'rb').read()).code\n"

STOCK_TIMING = """
import json, sys, time, torch
torch.set_num_threads(1)
from ultralytics.nn.tasks import DetectionModel
t = time.perf_counter(); model = DetectionModel("yolov8n.yaml", verbose=False).eval(); build = time.perf_counter() - t
x = torch.rand(1, 3, 640, 640)
with torch.no_grad():
    for _ in range(3):
        model(x)
    runs = []
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter(); model(x); runs.append(time.perf_counter() - t)
print(json.dumps({"build": build, "forward": sorted(runs)[len(runs) // 2]}))
"""


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


def engine_ratios(root: Path, rounds: int) -> dict[str, float]:
    package = root / "ultralytics"
    files = [str(package / "nn/tasks.py"), str(package / "utils/torch_utils.py")]
    cli = [sys.executable, "-m", "bbpatch"]
    applies, reverts, floors = [], [], []
    for _ in range(rounds):
        floors.append(timed([sys.executable, "-c", FLOOR, *files]))
        applies.append(timed([*cli, "apply", str(root)]))
        reverts.append(timed([*cli, "revert", str(root)]))
    apply_time = statistics.median(applies)
    return {
        "apply_s": apply_time,
        "floor_s": statistics.median(floors),
        "revert_s": statistics.median(reverts),
        "apply/floor": apply_time / statistics.median(floors),
        "revert/apply": statistics.median(reverts) / apply_time,
    }


def stock_model_ratios(clean: Path, patched: Path, rounds: int, iterations: int) -> dict[str, float]:
    samples = {"clean": [], "patched": []}
    sides = [("clean", clean), ("patched", patched)]
    for round_ in range(rounds):  # interleaved, first side alternating, so load drift and order hit both alike
        for name, root in sides if round_ % 2 == 0 else sides[::-1]:
            samples[name].append(run_in_tree(root, STOCK_TIMING, iterations))

    def median(name, key):
        return statistics.median(s[key] for s in samples[name])

    return {
        "yolov8n forward patched/unpatched": median("patched", "forward") / median("clean", "forward"),
        "yolov8n build patched/unpatched": median("patched", "build") / median("clean", "build"),
    }


def run_in_tree(root: Path, code: str, iterations: int) -> dict:
    """Run a timing script with the tree under ``root`` first on sys.path; its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, str(iterations)],
        cwd=root,
        env=tree_env(root),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def tree_env(root: Path) -> dict:
    """Environment for a subprocess that must import the ultralytics tree under ``root``, quietly and offline."""
    return {**os.environ, "PYTHONPATH": str(root), "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args(argv)
    from bbpatch import api

    package = Path(next(iter(__import__("importlib").util.find_spec("ultralytics").submodule_search_locations)))
    with tempfile.TemporaryDirectory() as temp:
        clean, patched = Path(temp, "clean"), Path(temp, "patched")
        for root in (clean, patched):
            shutil.copytree(package, root / "ultralytics", ignore=shutil.ignore_patterns("__pycache__"))
        figures = engine_ratios(clean, args.rounds)
        api.apply(patched)
        figures.update(stock_model_ratios(clean, patched, args.rounds, args.iterations))
    targets = {
        "apply/floor": 1.5,
        "revert/apply": 0.5,
        "yolov8n forward patched/unpatched": 1.01,
        "yolov8n build patched/unpatched": 1.05,
    }
    print(f"engine benchmarks (ultralytics at {package}, bbpatch modules at {package_dir('bbpatch.modules')})")
    for name, value in figures.items():
        target = targets.get(name)
        verdict = "" if target is None else f"  target <= {target}: {'met' if value <= target else 'NOT met'}"
        print(f"  {name:<36} {value:8.3f}{verdict}")


if __name__ == "__main__":
    main()
