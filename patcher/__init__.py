"""bbpatch: swap the backbone of Ultralytics YOLO / RT-DETR with a reversible, version-aware libcst patch."""

__version__ = "0.4.0.dev0"
