"""Measure the map size every backbone layer of a model YAML outputs, in a target tree's own ultralytics.

Run by ``bbpatch yaml`` (``bbpatch.models.strides.measure``) as ``python -c <this file's text>`` in a subprocess whose
working directory, first on ``sys.path``, is the tree's root, so ``import ultralytics`` is that tree's package,
fork modules included. It imports nothing from bbpatch. The request comes on stdin as JSON::

    {"package": "/abs/ultralytics", "models": [{...model dict, backbone layers only...}], "sizes": [256, 384]}

and the answer is one line, ``MARKER`` then JSON: ``{"answers": [...]}``, per model either
``{"maps": {size: [[h, w, channels] or "what it is", ...]}}`` (per input size and layer) or ``{"error": ..., "layer":
index or null}``; or ``{"error": ...}`` alone when the tree cannot be imported. Layers are built by the tree's
``parse_model`` and run the way ``BaseModel._predict_once`` routes ``f``, on a zero image, in eval mode.
"""

import copy
import json
import os
import sys
import traceback

MARKER = "bbpatch-layer-maps: "


def reply(**answer):
    print(MARKER + json.dumps(answer), flush=True)


def last_line(error):
    return traceback.format_exception_only(type(error), error)[-1].strip()


def build(tasks, model, count):
    d = copy.deepcopy(model)
    d["backbone"], d["head"] = d["backbone"][:count], []
    layers, _ = tasks.parse_model(d, ch=d.get("ch", 3), verbose=False)
    return layers


def first_unbuildable(tasks, model):
    """Index of the first layer parse_model cannot build (the whole list failed)."""
    for count in range(1, len(model["backbone"]) + 1):
        try:
            build(tasks, model, count)
        except Exception:
            return count - 1
    return None


def describe(output):
    if hasattr(output, "shape") and len(output.shape) == 4:
        return [int(output.shape[2]), int(output.shape[3]), int(output.shape[1])]
    if hasattr(output, "shape"):
        return f"a tensor of shape {list(output.shape)}, not a feature map"
    return f"a {type(output).__name__}, not a feature map"


def run(torch, layers, channels, size):
    """Map size (or a description) of every layer's output for a ``size`` x ``size`` input."""
    x, outputs, maps = torch.zeros(1, channels, size, size), [], []
    for index, m in enumerate(layers):
        if m.f != -1:
            x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
        try:
            x = m(x)
        except Exception as error:
            raise LayerError(index, f"forward of a {size}x{size} image failed: {last_line(error)}") from None
        outputs.append(x)
        maps.append(describe(x))
    return maps


class LayerError(Exception):
    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


def measure(torch, tasks, model, sizes):
    try:
        layers = build(tasks, model, len(model["backbone"]))
    except Exception as error:
        index = first_unbuildable(tasks, model)
        return dict(error=f"the tree's parse_model cannot build it: {last_line(error)}", layer=index)
    layers.eval()
    try:
        with torch.no_grad():
            return dict(maps={size: run(torch, layers, model.get("ch", 3), size) for size in sizes})
    except LayerError as error:
        return dict(error=str(error), layer=error.index)


def main():
    request = json.loads(sys.stdin.read())
    try:
        import torch
        from ultralytics.nn import tasks
    except Exception as error:
        return reply(error=f"cannot import the tree's ultralytics: {last_line(error)}")
    if os.path.realpath(os.path.join(os.path.dirname(tasks.__file__), "..")) != os.path.realpath(request["package"]):
        return reply(error=f"imported ultralytics from {tasks.__file__}, not from the tree")
    torch.set_num_threads(1)  # tiny inputs: threads cost more than they give
    reply(answers=[measure(torch, tasks, model, request["sizes"]) for model in request["models"]])


if __name__ == "__main__":
    main()
