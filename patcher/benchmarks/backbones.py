"""Backbone library benchmarks, measured side by side in one run and printed as ratios (targets in brackets).

- build time of yolov8n-mobilenetv4.yaml / stock yolov8n.yaml, both on one patched tree            [<= 1.5]
- MobileNetV4ConvSmall wrapper forward / the bare timm features_only model inside it, at 640       [<= 1.02]
- yolov8n-mobileone.yaml (MobileOne-S0) CPU latency at 640, after fuse() / before                  [<= 0.67]

Every pair is interleaved round by round, so drift in machine load hits both sides alike; one CPU thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bbpatch.benchmarks.engine import copy_of_installed, run_in_tree
from bbpatch.engine.tree import installed_package

BUILD_TIME = """
import json, sys, time, torch
torch.set_num_threads(1)
from ultralytics.nn.tasks import DetectionModel
for name in ("yolov8n-mobilenetv4.yaml", "yolov8n.yaml"):  # warm-up: first-use costs belong to neither side
    DetectionModel(name, verbose=False)
times = {}
for _ in range(int(sys.argv[1])):
    for name in ("yolov8n-mobilenetv4.yaml", "yolov8n.yaml"):
        t = time.perf_counter()
        DetectionModel(name, verbose=False)
        times.setdefault(name, []).append(time.perf_counter() - t)
print(json.dumps(times))
"""

FUSED_LATENCY = """
import copy, json, sys, time, torch
torch.set_num_threads(1)
from ultralytics.nn.tasks import DetectionModel
unfused = DetectionModel("yolov8n-mobileone.yaml", verbose=False).eval()
fused = copy.deepcopy(unfused).fuse(verbose=False)
x = torch.rand(1, 3, 640, 640)
times = {"fused": [], "unfused": []}
with torch.no_grad():
    for model in (fused, unfused):
        model(x)
    for _ in range(int(sys.argv[1])):
        for name, model in (("fused", fused), ("unfused", unfused)):
            t = time.perf_counter(); model(x); times[name].append(time.perf_counter() - t)
print(json.dumps(times))
"""


def median_ratio(times: dict, numerator: str, denominator: str) -> float:
    return statistics.median(times[numerator]) / statistics.median(times[denominator])


def wrapper_overhead(iterations: int) -> float:
    """The wrapper adds a list comprehension over timm's outputs; same weights, same input, in this process."""
    import time

    import torch

    from bbpatch.modules import MobileNetV4ConvSmall

    torch.set_num_threads(1)
    wrapper = MobileNetV4ConvSmall().eval()
    sides = {"wrapper": wrapper, "timm": wrapper.model}
    x = torch.rand(1, 3, 640, 640)
    times = {name: [] for name in sides}
    with torch.no_grad():
        for module in sides.values():
            module(x)
        for _ in range(iterations):
            for name, module in sides.items():
                start = time.perf_counter()
                module(x)
                times[name].append(time.perf_counter() - start)
    return median_ratio(times, "wrapper", "timm")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args(argv)
    from bbpatch import api

    package = installed_package()
    with tempfile.TemporaryDirectory() as temp:
        root = copy_of_installed(Path(temp))
        api.apply(root)
        builds = run_in_tree(root, BUILD_TIME, args.iterations)
        latency = run_in_tree(root, FUSED_LATENCY, args.iterations)
    figures = {
        "build yolov8n-mobilenetv4 / yolov8n": (median_ratio(builds, "yolov8n-mobilenetv4.yaml", "yolov8n.yaml"), 1.5),
        "forward wrapper / bare timm (640)": (wrapper_overhead(args.iterations * 2), 1.02),
        "MobileOne-S0 YOLO fused / unfused (640)": (median_ratio(latency, "fused", "unfused"), 0.67),
    }
    print(f"backbone benchmarks (ultralytics at {package}, 1 CPU thread, {args.iterations} interleaved rounds)")
    for name, (value, target) in figures.items():
        print(f"  {name:<42} {value:8.3f}  target <= {target}: {'met' if value <= target else 'NOT met'}")


if __name__ == "__main__":
    main()
