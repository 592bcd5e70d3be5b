"""``make demo``: the main job on a default it sets up itself.

Copies the ultralytics package installed next to bbpatch into a work folder, applies bbpatch, builds the
shipped detection models and prints name / params / GFLOPs / strides, then reverts and checks the copy is
byte-identical to what it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bbpatch import api
from bbpatch.engine.tree import installed_package
from bbpatch.models.catalog import package_dir

BUILD = """
import json, sys
from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel
from ultralytics.utils.torch_utils import get_flops
for name in sys.argv[1:]:
    cls = RTDETRDetectionModel if name.startswith("rtdetr") else DetectionModel
    model = cls(name, verbose=False)
    params = sum(p.numel() for p in model.parameters())
    strides = model.stride.int().tolist()
    print(json.dumps({"name": name, "params": params, "gflops": get_flops(model, 640), "strides": strides}), flush=True)
"""


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def default_models(all_models: bool) -> list[str]:
    names = sorted(p.name for p in package_dir("bbpatch.yamls").glob("*.yaml"))
    if not all_models:
        names = [n for n in names if n.startswith(("yolov8-", "rtdetr-")) and "-seg" not in n and "-pose" not in n]
    return [with_scale(n) for n in names]


SCALED = {
    "yolov8-": "yolov8n-",
    "yolo11-": "yolo11n-",
    "yolo12-": "yolo12n-",
    "yolo26-": "yolo26n-",
    "yolov5-": "yolov5nu-",
}


def with_scale(name: str) -> str:
    """The n-scale name ultralytics' scale convention loads a shipped YAML by (yolo26-x.yaml -> yolo26n-x.yaml)."""
    prefix = next((p for p in SCALED if name.startswith(p)), None)
    return SCALED[prefix] + name[len(prefix) :] if prefix else name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="demo-out")
    parser.add_argument("--all", action="store_true", help="every shipped YAML, not only YOLOv8 and RT-DETR detect")
    args = parser.parse_args(argv)
    source = installed_package()
    root = Path(args.workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root / "ultralytics", ignore=shutil.ignore_patterns("__pycache__"))
    before = tree_digest(root)
    report = api.apply(root)
    print(f"tree: {report.tree}\napplied: {sum(s == 'applied' for s in report.edits.values())} edits\n")
    env = {**os.environ, "PYTHONPATH": str(root), "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
    print(f"{'model':<34}{'params':>12}{'GFLOPs':>9}  strides")
    with subprocess.Popen(
        [sys.executable, "-c", BUILD, *default_models(args.all)], cwd=root, env=env, stdout=subprocess.PIPE, text=True
    ) as process:
        for line in process.stdout:
            row = json.loads(line)
            print(f"{row['name']:<34}{row['params']:>12,}{row['gflops']:>9.2f}  {row['strides']}", flush=True)
    api.revert(root)
    identical = tree_digest(root) == before
    print(f"\nreverted: tree byte-identical to the copy before apply: {identical}")
    if process.returncode or not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
