"""A real public detection data set from the package registry, in YOLO format, for the study in docs/compare.md.

DeepForest's wheel (``pip download --no-deps deepforest==2.1.0``, MIT) ships NEON airborne RGB images (10 cm a
pixel) with hand-drawn tree-crown boxes as Pascal VOC XML. Training images come from one Yellowstone plot
(2019_YELL_2_528000_4978000, 574 crowns), validation images from another (2019_YELL_2_541000_4977000, 279): no
crown is in both. Each image is cut into ``tile`` px tiles (the last row and column flush with the edge); a box
is kept in a tile when at least ``keep`` of its area is inside, clipped to the tile.

    python -m bbpatch.compare.datasets deepforest-2.1.0-py3-none-any.whl trees/   # or deepforest's data folder
    -> trees/data.yaml, trees/images/{train,val}/*.png, trees/labels/{train,val}/*.txt
"""

from __future__ import annotations

import argparse
import io
import sys
import xml.etree.ElementTree as ElementTree
import zipfile
from dataclasses import dataclass
from pathlib import Path

SPLITS = {
    "train": ("2019_YELL_2_528000_4978000_image_crop2",),
    "val": ("2019_YELL_2_541000_4977000_image_crop",),
}
CLASSES = ("Tree",)
DATA_FOLDER = "deepforest/data/"


@dataclass(frozen=True)
class Box:
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)


def read_source(source: Path, name: str) -> bytes:
    """One file of DeepForest's data folder, from the wheel (a zip) or from an unpacked/installed folder."""
    if source.is_file():
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(DATA_FOLDER + name)
    return (source / name).read_bytes()


def voc_boxes(xml: bytes) -> list[Box]:
    root = ElementTree.fromstring(xml)
    boxes = []
    for item in root.iter("object"):
        edges = item.find("bndbox")
        boxes.append(Box(item.findtext("name"), *(float(edges.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))))
    return boxes


def starts(length: int, tile: int) -> list[int]:
    """Tile origins along one side: every ``tile`` px, the last one flush with the edge."""
    if length <= tile:
        return [0]
    return sorted({*range(0, length - tile, tile), length - tile})


def tile_boxes(boxes: list[Box], x0: int, y0: int, width: int, height: int, keep: float) -> list[Box]:
    kept = []
    for box in boxes:
        clipped = Box(box.name, max(box.xmin, x0) - x0, max(box.ymin, y0) - y0,
                      min(box.xmax, x0 + width) - x0, min(box.ymax, y0 + height) - y0)
        if box.area > 0 and clipped.area >= keep * box.area:
            kept.append(clipped)
    return kept


def yolo_lines(boxes: list[Box], width: int, height: int) -> str:
    lines = []
    for box in boxes:
        cx, cy = (box.xmin + box.xmax) / 2 / width, (box.ymin + box.ymax) / 2 / height
        w, h = (box.xmax - box.xmin) / width, (box.ymax - box.ymin) / height
        lines.append(f"{CLASSES.index(box.name)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "".join(line + "\n" for line in lines)


def convert(source: Path, out: Path, tile: int = 256, keep: float = 0.5, splits=SPLITS) -> dict[str, tuple[int, int]]:
    """Write the YOLO data set; returns {split: (images, boxes)}."""
    from PIL import Image

    counts = {}
    for split, stems in splits.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        images = boxes_written = 0
        for stem in stems:
            image = Image.open(io.BytesIO(read_source(source, f"{stem}.png"))).convert("RGB")
            boxes = [b for b in voc_boxes(read_source(source, f"{stem}.xml")) if b.name in CLASSES]
            for y0 in starts(image.height, tile):
                for x0 in starts(image.width, tile):
                    crop = image.crop((x0, y0, min(x0 + tile, image.width), min(y0 + tile, image.height)))
                    kept = tile_boxes(boxes, x0, y0, crop.width, crop.height, keep)
                    name = f"{stem}_{x0}_{y0}"
                    crop.save(out / "images" / split / f"{name}.png")
                    (out / "labels" / split / f"{name}.txt").write_text(yolo_lines(kept, crop.width, crop.height))
                    images, boxes_written = images + 1, boxes_written + len(kept)
        counts[split] = (images, boxes_written)
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    (out / "data.yaml").write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return counts


def shapes(root: Path, train: int = 12, val: int = 4, size: int = 64) -> Path:
    """Squares (class 0) and discs (class 1) on noise, made here: what the Ray test and ``make bench`` train on."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(count):
            image = Image.fromarray(rng.integers(0, 96, (size, size, 3), dtype=np.uint8))
            draw, lines = ImageDraw.Draw(image), []
            for shape in (0, 1):
                side = int(rng.integers(14, 24))
                x0, y0 = (int(v) for v in rng.integers(2, size - side - 2, 2))
                if shape == 0:
                    draw.rectangle([x0, y0, x0 + side, y0 + side], fill=(240, 240, 240))
                else:
                    draw.ellipse([x0, y0, x0 + side, y0 + side], fill=(240, 200, 40))
                c = (x0 + side / 2) / size, (y0 + side / 2) / size
                lines.append(f"{shape} {c[0]:.6f} {c[1]:.6f} {side / size:.6f} {side / size:.6f}")
            image.save(root / "images" / split / f"{index}.png")
            (root / "labels" / split / f"{index}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: square\n"
                                    "  1: disc\n")
    return root / "data.yaml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bbpatch.compare.datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="deepforest's wheel (pip download --no-deps deepforest==2.1.0)")
    parser.add_argument("out", type=Path, help="the YOLO data set's folder (data.yaml in it)")
    parser.add_argument("--tile", type=int, default=256, help="tile side in px (default: 256)")
    args = parser.parse_args(argv)
    try:
        counts = convert(args.source, args.out, tile=args.tile)
    except (OSError, KeyError, zipfile.BadZipFile, ElementTree.ParseError) as error:
        print(f"{args.source}: not DeepForest's wheel or data folder ({error}); get it with "
              "`pip download --no-deps deepforest==2.1.0`", file=sys.stderr)
        return 2
    for split, (images, boxes) in counts.items():
        print(f"{split}: {images} tiles, {boxes} boxes")
    print(f"wrote {args.out / 'data.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
