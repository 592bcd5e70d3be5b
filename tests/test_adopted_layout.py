"""The `nn/Addmodules/bbpatch/` layout of an adopted tree (docs/adopt.md, "After adoption"): its checkpoints name
bbpatch's classes `ultralytics.nn.Addmodules.bbpatch.*`; they load under ULTRALYTICS_SAFE_LOAD=1 there, and in a
plain applied tree with and without it, with the outputs they were saved with."""

from __future__ import annotations

import pytest
from recipe_trees import Backbone, Variant, make_recipe_tree

from bbpatch import api

from conftest import copy_package, release_package
from helpers import run_json

SAVE = """
import copy, json, torch
from ultralytics import YOLO
yolo = YOLO("yolov8n-mobilenetv4.yaml")  # bbpatch's shipped YAML: bbpatch's classes, in the adopted layout
torch.manual_seed(0)
x = torch.randn(1, 3, 256, 256)
with torch.no_grad():  # a checkpoint holds the model in half precision: the round trip is on both sides
    expected = copy.deepcopy(yolo.model).eval().half().float()(x)[0]
yolo.save(PATH)
torch.save({"x": x, "expected": expected}, PATH + ".expected")
print(json.dumps(sorted(g for g in torch.serialization.get_unsafe_globals_in_checkpoint(PATH) if "Addmodules" in g)))
"""

LOAD = """
import json, torch
from ultralytics import YOLO
from ultralytics.nn.tasks import _SafeLoad
from ultralytics.utils import SAFE_LOAD
reference = torch.load(PATH + ".expected")
yolo = YOLO(PATH)
with torch.no_grad():
    got = yolo.model.float().eval()(reference["x"])[0]
first = type(yolo.model.model[0])
print(json.dumps(dict(layer0=first.__module__ + "." + first.__name__, restricted=SAFE_LOAD and _SafeLoad.SUPPORTED,
                      difference=(got - reference["expected"]).abs().max().item())))
"""


def adopted_tree(root, version="8.4.190"):
    copy_package(release_package(version), root)
    make_recipe_tree(root / "ultralytics", Variant(backbones=(Backbone("FasterNet"),)), root / "models")
    assert api.adopt(root).state == "adopted"
    return root


@pytest.fixture(scope="module")
def adopted_checkpoint(tmp_path_factory):
    """(adopted tree, checkpoint saved there with a bbpatch backbone)."""
    root = adopted_tree(tmp_path_factory.mktemp("adopted") / "tree")
    path = root.parent / "adopted-mnv4.pt"
    names = run_json(root, SAVE.replace("PATH", repr(str(path))))
    assert names and all(n.startswith("ultralytics.nn.Addmodules.bbpatch.") for n in names), names
    assert "ultralytics.nn.Addmodules.bbpatch.timm_backbones.MobileNetV4ConvSmall_050" in names
    return root, path


@pytest.mark.parametrize("safe", ["1", "0"], ids=["ULTRALYTICS_SAFE_LOAD=1", "plain load"])
@pytest.mark.parametrize("where", ["adopted tree", "applied 8.4.190", "applied 8.4.100"])
def test_a_checkpoint_of_the_adopted_layout_loads_safely_there_and_in_an_applied_tree(
    adopted_checkpoint, tmp_path, where, safe
):
    adopted, path = adopted_checkpoint
    if where == "adopted tree":
        root = adopted
    else:
        root = copy_package(release_package(where.split()[-1]), tmp_path / "tree")
        api.apply(root)
    loaded = run_json(root, LOAD.replace("PATH", repr(str(path))), env={"ULTRALYTICS_SAFE_LOAD": safe})
    assert loaded["layer0"].endswith(".timm_backbones.MobileNetV4ConvSmall_050"), loaded
    assert loaded["difference"] < 1e-3, loaded
    assert loaded["restricted"] is (safe == "1")  # the weights_only load with the allow-list, or the plain one
