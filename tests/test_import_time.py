"""Start-up cost of a patched tree: timm and torchvision load only when a backbone is built or unpickled.

The patched ``tasks.py`` imports every Addmodules class; if that imported timm (and with it torchvision),
every ``from ultralytics import YOLO`` would pay about 2 s more, stock YAMLs included. Upstream's own
``tests/test_cli.py::test_cli_imports_defer_torchvision`` (8.4.190) checks the same for torchvision.
"""

import json

from helpers import run_py

LOADED = "{name: name in sys.modules for name in ('timm', 'torchvision')}"

STAGES = f"""
import json, sys
from ultralytics import YOLO
print(json.dumps({LOADED}))
YOLO("yolov8n.yaml")
print(json.dumps({LOADED}))
YOLO("yolov8n-mobilenetv4.yaml")
print(json.dumps({LOADED}))
"""

UPSTREAM_DEFER_TORCHVISION = (
    "import sys; "
    "from ultralytics import YOLO; "
    "from ultralytics.models.sam import Predictor; "
    "assert 'torchvision' not in sys.modules; "
    "assert 'ultralytics.models.sam.sam3.geometry_encoders' not in sys.modules"
)

SAVE = """
import torch
from ultralytics import YOLO
torch.save(YOLO("yolov8n-mobilenetv4.yaml").model, "PATH")
"""

LOAD = f"""
import json, sys, torch
from ultralytics import YOLO
before = {LOADED}
model = torch.load("PATH", weights_only=False)
model.eval()(torch.zeros(1, 3, 64, 64))
print(json.dumps([before, {LOADED}]))
"""

NOTHING = {"timm": False, "torchvision": False}
BOTH = {"timm": True, "torchvision": True}


def loaded_modules(output):
    return [json.loads(line) for line in output.strip().splitlines()]


def test_stock_start_up_and_build_import_neither_timm_nor_torchvision(patched_tree):
    after_import, after_stock, after_backbone = loaded_modules(run_py(patched_tree, STAGES))
    assert after_import == NOTHING
    assert after_stock == NOTHING
    assert after_backbone == BOTH


def test_upstream_defer_torchvision_assertion_holds_on_the_patched_tree(patched_tree):
    run_py(patched_tree, UPSTREAM_DEFER_TORCHVISION)


def test_unpickling_a_backbone_model_in_a_fresh_process_imports_timm(patched_tree, tmp_path):
    path = tmp_path / "model.pt"
    run_py(patched_tree, SAVE.replace("PATH", str(path)))
    before, after = json.loads(run_py(patched_tree, LOAD.replace("PATH", str(path))).strip().splitlines()[-1])
    assert before == NOTHING
    assert after == BOTH
