"""Which shipped YAMLs a release can build: each keeps the head of one stock model YAML.

A release without that stock YAML lacks the modules its head needs (YOLO26's ``Segment26``, YOLO12's
``A2C2f``, YOLO11's ``C3k2``) or their arguments (YOLO26's four-argument ``SPPF``), so ``bbpatch apply``
does not install the YAML there and ``bbpatch verify`` names it. Pathlib only: apply stays light.
"""

from __future__ import annotations

from pathlib import Path

STOCK_BASES = {  # head of a shipped YAML (its name before -<family>): the stock YAML it comes from
    "yolov8": "yolov8.yaml",
    "yolov8-seg": "yolov8-seg.yaml",
    "yolov8-pose": "yolov8-pose.yaml",
    "yolo11": "yolo11.yaml",
    "yolo11-seg": "yolo11-seg.yaml",
    "yolo11-pose": "yolo11-pose.yaml",
    "yolov5": "yolov5.yaml",
    "rtdetr": "rtdetr-l.yaml",
    "yolo26": "yolo26.yaml",
    "yolo26-seg": "yolo26-seg.yaml",
    "yolo26-pose": "yolo26-pose.yaml",
    "yolo26-obb": "yolo26-obb.yaml",
    "yolo12": "yolo12.yaml",
}
STOCK_DIRS = ("cfg/models/*", "models/*")  # releases before 8.0.136 kept model YAMLs in ultralytics/models/


def stock_base(yaml_name: str) -> str | None:
    """The stock YAML whose head ``yaml_name`` keeps (the longest matching head), None for other names."""
    heads = [head for head in STOCK_BASES if yaml_name.startswith(f"{head}-")]
    return STOCK_BASES[max(heads, key=len)] if heads else None


def stock_yamls(package: Path) -> set[str]:
    """Names of the release's stock model YAMLs."""
    return {path.name for where in STOCK_DIRS for path in package.glob(f"{where}/*.yaml")}


def unbuildable(package: Path, names) -> dict[str, str]:
    """``{name: missing stock YAML}`` for the shipped YAML names this release cannot build."""
    present = stock_yamls(package)
    bases = {name: stock_base(name) for name in names}
    return {name: base for name, base in bases.items() if base is not None and base not in present}
