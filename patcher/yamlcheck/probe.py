"""Build model YAMLs in a target tree's own ultralytics and run them once: the check behind ``bbpatch yaml``.

Run by :mod:`bbpatch.yamlcheck.build` as ``python -c <this file's text>`` in a subprocess with the tree's root on
``PYTHONPATH`` and the YAMLs' folder as working directory. The request comes on stdin as JSON::

    {"package": "/abs/ultralytics", "yamls": ["derived.yaml", ...], "size": 256}

and the answer is one line, ``MARKER`` then JSON: ``{"answers": [...]}``, per YAML ``{"layer0": {"name", "class",
"bbpatch"}}`` when it built and ran, else ``{"error": "its last line"}``; or ``{"error": ...}`` alone when the
tree's ultralytics cannot be imported. bbpatch's import hook is installed first: it patches the tree in memory
when nothing on disk does, and stands aside when the tree is patched on disk (bbpatch apply or adopt).
"""

import json
import os
import sys
import traceback

MARKER = "bbpatch-yaml-build: "


def reply(**answer):
    print(MARKER + json.dumps(answer), flush=True)


def last_line(error):
    return traceback.format_exception_only(type(error), error)[-1].strip()


def model_class(path):
    """RT-DETR for a YAML with an RT-DETR decoder (YOLO would build it as a detection model), else YOLO."""
    import yaml

    with open(path, encoding="utf-8") as file:
        head = yaml.safe_load(file).get("head") or []
    if any(row[2] == "RTDETRDecoder" for row in head):
        from ultralytics import RTDETR  # not in releases before 8.0.1xx, which build no RT-DETR YAML either

        return RTDETR
    from ultralytics import YOLO

    return YOLO


def build_and_run(torch, path, size):
    """Build the YAML as ``YOLO(path)`` does (its stride probe included) and run one eval forward."""
    try:
        model = model_class(path)(path).model
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    except Exception as error:
        return dict(error=last_line(error))
    first = model.model[0]
    cls = type(first)
    return dict(
        layer0=dict(
            name=getattr(first, "type", cls.__name__),
            cls=f"{cls.__module__}.{cls.__qualname__}",
            bbpatch=getattr(cls, "bbpatch_role", None) == "backbone",
        )
    )


def main():
    request = json.loads(sys.stdin.read())
    if sys.path and sys.path[0] == "":  # python -c puts the working directory (the user's) before the tree's root
        del sys.path[0]
    try:
        from bbpatch.hook import install

        install()
    except Exception:  # a bbpatch without its hook: the tree must then be patched on disk
        pass
    try:
        import torch
        from ultralytics.nn import tasks
    except Exception as error:
        return reply(error=f"cannot import the tree's ultralytics: {last_line(error)}")
    if os.path.realpath(os.path.join(os.path.dirname(tasks.__file__), "..")) != os.path.realpath(request["package"]):
        return reply(error=f"imported ultralytics from {tasks.__file__}, not from the tree")
    if not hasattr(tasks, "bbpatch_backbone"):
        return reply(error="its parse_model is not patched by bbpatch (run 'bbpatch apply' on it, or 'bbpatch enable')")
    torch.set_num_threads(1)  # one small image: threads cost more than they give
    reply(answers=[build_and_run(torch, path, request["size"]) for path in request["yamls"]])


if __name__ == "__main__":
    main()
