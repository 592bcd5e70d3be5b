"""A detection dataset a model learns in a few CPU epochs: one large white square or disc a 64 px image, on noise."""

from __future__ import annotations

import random
from pathlib import Path

IMGSZ = 64
CLASSES = ("square", "disc")


def write_shapes(root: Path, train: int = 48, val: int = 12, seed: int = 0) -> Path:
    """Images and YOLO labels under ``root``, and its ``data.yaml`` (returned). Deterministic."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng, noise = random.Random(seed), np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = Image.fromarray(noise.integers(0, 160, (IMGSZ, IMGSZ, 3), dtype=np.uint8))
            cls, side = i % 2, rng.randint(IMGSZ // 2, IMGSZ - 8)
            x, y = rng.randint(0, IMGSZ - side), rng.randint(0, IMGSZ - side)
            box = [x, y, x + side - 1, y + side - 1]
            draw = ImageDraw.Draw(image)
            (draw.rectangle if cls == 0 else draw.ellipse)(box, fill=(255, 255, 255))
            image.save(images / f"{i}.png")
            centre = (x + side / 2) / IMGSZ, (y + side / 2) / IMGSZ
            (labels / f"{i}.txt").write_text(f"{cls} {centre[0]:.6f} {centre[1]:.6f} {side / IMGSZ:.6f} "
                                             f"{side / IMGSZ:.6f}\n")  # fmt: skip
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}", encoding="utf-8")
    return data
