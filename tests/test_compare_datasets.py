"""The DeepForest (NEON tree crowns) to YOLO converter behind docs/compare.md's study, on a VOC folder of our own."""

from __future__ import annotations

import zipfile

import pytest
from PIL import Image

from bbpatch.compare import datasets

VOC = """<annotation><filename>plot.png</filename><size><width>300</width><height>200</height><depth>3</depth></size>
<object><name>Tree</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>
<object><name>Tree</name><bndbox><xmin>140</xmin><ymin>100</ymin><xmax>180</xmax><ymax>140</ymax></bndbox></object>
<object><name>Dead</name><bndbox><xmin>200</xmin><ymin>10</ymin><xmax>220</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""


def voc_folder(root):
    root.mkdir()
    Image.new("RGB", (300, 200), (30, 90, 40)).save(root / "plot.png")
    (root / "plot.xml").write_text(VOC)
    return root


def labels(path):
    """Every value of a YOLO label file, one list (class, cx, cy, w, h, class, ...)."""
    return [float(v) for v in path.read_text().split()]


def test_tiles_keep_boxes_mostly_inside_clipped_and_normalised(tmp_path):
    source = voc_folder(tmp_path / "data")

    counts = datasets.convert(source, tmp_path / "out", tile=160, splits={"val": ("plot",)})

    # origins 0 and 140 across (flush right), 0 and 40 down: four tiles; the second crown (x 140..180) is exactly
    # half inside the left tiles: kept there, clipped
    assert counts == {"val": (4, 6)}
    assert labels(tmp_path / "out/labels/val/plot_0_0.txt") == pytest.approx(
        [0, 30 / 160, 40 / 160, 40 / 160, 40 / 160, 0, 150 / 160, 120 / 160, 20 / 160, 40 / 160], abs=1e-6
    )
    assert labels(tmp_path / "out/labels/val/plot_0_40.txt") == pytest.approx(
        [0, 30 / 160, 10 / 160, 40 / 160, 20 / 160, 0, 150 / 160, 80 / 160, 20 / 160, 40 / 160], abs=1e-6
    )
    assert labels(tmp_path / "out/labels/val/plot_140_0.txt") == pytest.approx(
        [0, 20 / 160, 120 / 160, 40 / 160, 40 / 160], abs=1e-6
    )
    assert Image.open(tmp_path / "out/images/val/plot_140_40.png").size == (160, 160)
    assert "Dead" not in (tmp_path / "out/data.yaml").read_text()


def test_reads_the_wheel_as_well_as_the_folder(tmp_path):
    source = voc_folder(tmp_path / "data")
    wheel = tmp_path / "deepforest-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in ("plot.png", "plot.xml"):
            archive.write(source / name, datasets.DATA_FOLDER + name)

    from_wheel = datasets.convert(wheel, tmp_path / "a", tile=160, splits={"val": ("plot",)})
    from_folder = datasets.convert(source, tmp_path / "b", tile=160, splits={"val": ("plot",)})

    assert from_wheel == from_folder
    for label in (tmp_path / "a/labels/val").iterdir():
        assert label.read_bytes() == (tmp_path / "b/labels/val" / label.name).read_bytes()


def test_not_deepforest_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert datasets.main([str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip download --no-deps deepforest==2.1.0" in err[0]
