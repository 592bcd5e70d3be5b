"""The tiny synthetic detection dataset verify trains on, and the offline environment ultralytics needs for it.

Coloured rectangles on grey 128 px images, two classes, YOLO-format labels. Deterministic, so a run
can be repeated.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
from pathlib import Path

IMGSZ = 128
SPLITS = {"train": 8, "val": 2}
CLASSES = {0: (220, 40, 40), 1: (40, 40, 220)}
BOXES_PER_IMAGE = 2


def write_dataset(root: Path, seed: int = 0) -> Path:
    """Write images, labels and ``data.yaml`` under ``root``; return the ``data.yaml`` path."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for split, count in SPLITS.items():
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = Image.new("RGB", (IMGSZ, IMGSZ), (114, 114, 114))
            draw = ImageDraw.Draw(image)
            rows = [draw_box(draw, rng) for _ in range(BOXES_PER_IMAGE)]
            image.save(images / f"{i}.jpg", quality=95)
            (labels / f"{i}.txt").write_text("\n".join(rows) + "\n")
    names = "".join(f"  {k}: {name}\n" for k, name in zip(CLASSES, ("red", "blue")))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return data


def draw_box(draw, rng):
    """Draw one filled rectangle; return its label row (class, centre x, centre y, width, height; normalized)."""
    cls = rng.choice(list(CLASSES))
    w, h = rng.randint(20, 56), rng.randint(20, 56)
    x, y = rng.randint(0, IMGSZ - w), rng.randint(0, IMGSZ - h)
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill=CLASSES[cls])
    return f"{cls} {(x + w / 2) / IMGSZ:.6f} {(y + h / 2) / IMGSZ:.6f} {w / IMGSZ:.6f} {h / IMGSZ:.6f}"


def offline_environment(config_dir: Path) -> dict:
    """Environment variables that keep ultralytics from reaching the network during verify.

    - ``YOLO_OFFLINE=1`` makes ``is_online()`` false (no update checks, no telemetry, no downloads
      attempted for missing assets on releases that honour it);
    - ``YOLO_CONFIG_DIR`` points at a private settings folder holding an ``Arial.ttf``:
      ``check_det_dataset`` calls ``check_font("Arial.ttf")`` on every training run, on every release,
      and downloads the font when it is missing. Any TrueType font satisfies it; matplotlib ships one.
    The training arguments do the rest: ``plots=False``, ``amp=False`` (the AMP check would download
    a model; it is skipped on CPU anyway), ``pretrained=False``, ``workers=0``.
    """
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    font = fonts / "Arial.ttf"
    if not font.exists():
        shutil.copyfile(bundled_font(), font)
    return {"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config_dir), "MPLBACKEND": "Agg"}


def bundled_font() -> Path:
    """matplotlib's DejaVu Sans, found without importing matplotlib (which takes half a second)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib is not installed; verify needs its bundled font for training runs")
    return Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
