"""bbpatch: swap the backbone of Ultralytics YOLO / RT-DETR with a reversible, version-aware libcst patch."""

__version__ = "0.4.0.dev0"

from bbpatch import _moved  # noqa: E402  (the 0.3 import paths, until 0.5)

_moved.install()
