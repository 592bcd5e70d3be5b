"""Backbones and blocks inside a patched ultralytics tree: user files, checkpoints across processes, fuse()."""

import json
import shutil

from helpers import run_py

USER_BACKBONE = '''
from torch import nn


class TinyBackbone(nn.Module):
    """A user's own backbone, following docs/contract.md only."""

    bbpatch_role = "backbone"
    min_input_size = 64

    def __init__(self, width=16):
        super().__init__()
        self.channels = [width, 2 * width, 4 * width, 8 * width]
        c_in = [3, *self.channels[:-1]]
        strides = [4, 2, 2, 2]
        self.stages = nn.ModuleList(nn.Conv2d(a, b, 3, s, 1) for a, b, s in zip(c_in, self.channels, strides))

    def forward(self, x):
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs
'''

BUILD_USER_MODEL = """
import torch
from ultralytics import YOLO
model = YOLO(YAML).model
boxes = model.eval()(torch.zeros(1, 3, 128, 128))[0]
print(model.model[0].type, model.stride.tolist(), list(boxes.shape))
"""


def test_user_backbone_file_works_without_editing_tasks_py(patched_tree, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(patched_tree, root)
    tasks_before = (root / "ultralytics/nn/tasks.py").read_bytes()
    (root / "ultralytics/nn/Addmodules/tiny_backbone.py").write_text(USER_BACKBONE)
    shipped = next(root.rglob("yolov8-mobilenetv4.yaml")).read_text()
    yaml_path = tmp_path / "yolov8n-tiny.yaml"
    assert "backbone_scales:" in shipped  # layer 0 edited to a class outside the scales' variants: built as written
    yaml_path.write_text(shipped.replace("MobileNetV4ConvSmall_050, []", "TinyBackbone, [16]"))

    out = run_py(root, BUILD_USER_MODEL.replace("YAML", repr(str(yaml_path))))
    assert out.split()[0] == "TinyBackbone" and "[8.0, 16.0, 32.0]" in out
    assert out.strip().endswith("[1, 84, 336]")  # 16x16 + 8x8 + 4x4 anchors, 4 box + 80 class values
    assert (root / "ultralytics/nn/tasks.py").read_bytes() == tasks_before


SAVE = """
import json, torch
from ultralytics import YOLO
results = {}
for name in NAMES:
    yolo = YOLO(name)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = yolo.model.eval()(x)[0]  # the half-precision round trip is on both sides below
        half_round_trip = __import__("copy").deepcopy(yolo.model).half().float()(x)[0]
    path = f"{name[:-5]}.pt"
    yolo.save(path)
    torch.save({"x": x, "expected": half_round_trip}, f"{name[:-5]}.expected.pt")
    results[name] = path
print(json.dumps(results))
"""

LOAD_AND_PREDICT = """
import json, numpy as np, torch
from ultralytics import YOLO
results = {}
for name, path in PATHS.items():
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    yolo = YOLO(path)  # ULTRALYTICS_SAFE_LOAD=1: weights_only with an allow-list
    reference = torch.load(path.replace(".pt", ".expected.pt"))
    with torch.no_grad():
        got = yolo.model.float().eval()(reference["x"])[0]
    prediction = yolo.predict(np.zeros((256, 256, 3), np.uint8), imgsz=256, verbose=False)
    results[name] = dict(
        timm_globals=[g for g in needed if g.startswith("timm.")],
        bbpatch_globals=[g for g in needed if g.startswith("ultralytics.nn.Addmodules.")],
        max_difference=(got - reference["expected"]).abs().max().item(),
        predictions=len(prediction),
    )
print(json.dumps(results))
"""


def test_checkpoint_saved_then_loaded_safely_in_a_fresh_process_and_predicts(patched_tree, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(patched_tree, root)  # checkpoints are written next to the tree (cwd)
    names = ["yolov8n-mobilenetv4.yaml", "yolov5n-mobileone-blocks.yaml"]
    paths = json.loads(run_py(root, SAVE.replace("NAMES", repr(names))).strip().splitlines()[-1])
    paths = {name: str(root / path) for name, path in paths.items()}

    code = LOAD_AND_PREDICT.replace("PATHS", repr(paths))
    results = json.loads(run_py(root, code, env={"ULTRALYTICS_SAFE_LOAD": "1"}).strip().splitlines()[-1])
    for name in names:
        assert results[name]["timm_globals"] == [], name
        assert results[name]["bbpatch_globals"], name  # the rebuild recipe names bbpatch classes only
        assert results[name]["max_difference"] < 1e-3, name
        assert results[name]["predictions"] == 1


FUSE = """
import json, torch
from ultralytics import YOLO
results = {}
generator = torch.Generator().manual_seed(0)
for name in NAMES:
    model = YOLO(name).model.eval()
    for m in model.modules():  # trained-like BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=generator) * 0.4 + 0.2
            m.running_var.data = torch.rand(m.running_var.shape, generator=generator) + 0.5
    x = torch.randn(1, 3, 256, 256, generator=generator)
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    results[name] = dict(
        relative_difference=((after - before).abs().max() / before.abs().max().clamp(min=1)).item(),
        branches_left=sum(hasattr(m, "conv_kxk") for m in model.modules()),
        reparameterized=sum(getattr(m, "reparam_conv", None) is not None for m in model.modules()),
    )
print(json.dumps(results))
"""


def test_fuse_reparameterizes_mobileone_backbone_and_blocks(patched_tree):
    names = ["yolov8n-mobileone.yaml", "yolov5n-mobileone-blocks.yaml"]
    results = json.loads(run_py(patched_tree, FUSE.replace("NAMES", repr(names))).strip().splitlines()[-1])
    for name in names:
        assert results[name]["branches_left"] == 0, name
        assert results[name]["reparameterized"] > 0, name
        assert results[name]["relative_difference"] < 1e-4, name


HEAD_RIGHT_AFTER_BACKBONE = """
import torch, yaml
from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel
for cls, head in ((DetectionModel, "[[2, 3, 4], 1, Detect, [nc]]"), (RTDETRDetectionModel, "[-1, 1, AIFI, [256]]")):
    config = yaml.safe_load(f"nc: 4\\nbackbone:\\n  - [-1, 1, MobileNetV4ConvSmall_050, []]\\nhead:\\n  - {head}\\n")
    if cls is RTDETRDetectionModel:
        config["head"].append([[2, 3, -1], 1, "RTDETRDecoder", ["nc", 64]])
    model = cls(config, verbose=False).eval()
    print(type(model.model[1]).__name__, model.model[1].i, model.model[1].f)
"""


def test_a_layer_that_keeps_the_stale_c2_right_after_the_backbone(patched_tree):
    """Detect (and AIFI) branches leave parse_model's c2 as the previous layer's: after a backbone, the deepest
    map's channels, not its whole list (which made the next layer a class instead of a module)."""
    lines = run_py(patched_tree, HEAD_RIGHT_AFTER_BACKBONE).strip().splitlines()[-2:]
    assert lines == ["Detect 5 [2, 3, 4]", "AIFI 5 -1"]
