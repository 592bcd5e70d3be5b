"""Derive a model YAML that builds: :func:`derive_built`, the library face of ``bbpatch yaml``.

The text :func:`bbpatch.models.yamlgen.derive` writes is built in the target tree (``probe``, a subprocess) before
anyone gets it. A head that builds only with the stock backbone's channels (YOLOv13's HyperACE) gets 1x1 Conv
adapters (``yamlgen.channel_adapters``) by default; ``adapt_channels=False`` refuses instead, naming the option.
Whatever still does not build is refused: nothing is ever handed back that the tree cannot build.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bbpatch.models import base_model, catalog, yamlgen

PROBE_SIZE = 256  # a multiple of every stride up to 128, as the stride measurement's sizes
PROBE_TIMEOUT_S = 600
MARKER = "bbpatch-yaml-build: "  # probe.MARKER, not imported: that file runs in the tree's Python


class DoesNotBuild(ValueError):
    """The derived YAML does not build in its tree: nothing was written."""


@dataclass(frozen=True)
class Built:
    text: str  # the YAML
    adapted: bool  # channel adapters after the backbone
    notes: tuple[str, ...]  # one line each, for stderr


def derive_built(base, backbone, args=(), tree=None, adapt_channels=None) -> Built:
    """``yamlgen.derive``, built in the tree first.

    ``adapt_channels``: True always adds the channel adapters, False never (refuses a head that needs them),
    None (the default) adds them only when the YAML does not build without and builds with them.
    """
    located = base_model.locate(base, tree)
    package = located.tree().package
    if adapt_channels:
        text = yamlgen.derive(base, backbone, args, tree, adapt_channels=True)
        return Built(text, True, layer0_notes(backbone, must_build(package, located.path, text)))
    name = probe_name(located.path)
    text = yamlgen.derive(base, backbone, args, tree)
    answer = build(package, text, name)
    if "error" not in answer:
        return Built(text, False, layer0_notes(backbone, answer))
    failed = f"{located.path}: derived with {backbone}, it does not build in {package}: {answer['error']}"
    if adapt_channels is False:
        raise DoesNotBuild(f"{failed}; --adapt-channels gives the head the stock backbone's channels")
    try:
        adapted = yamlgen.derive(base, backbone, args, tree, adapt_channels=True)
    except ValueError as error:
        raise DoesNotBuild(f"{failed}; channel adapters cannot help ({error.args[0]})") from None
    adapted_answer = build(package, adapted, name)
    if "error" in adapted_answer:
        raise DoesNotBuild(f"{failed}; with channel adapters neither: {adapted_answer['error']}")
    note = (
        f"the head does not build with {backbone}'s channels ({answer['error']}): added 1x1 Conv adapters giving it "
        "the stock backbone's (--no-adapt-channels refuses instead)"
    )
    return Built(adapted, True, (note, *layer0_notes(backbone, adapted_answer)))


def must_build(package, base_path, text):
    answer = build(package, text, probe_name(base_path))
    if "error" in answer:
        raise DoesNotBuild(f"{base_path}: derived, it does not build in {package}: {answer['error']}")
    return answer


def layer0_notes(backbone, answer):
    """Where the tree binds the name to a class of its own (an adopted recipe tree), say that it builds that one."""
    layer0 = answer["layer0"]
    if layer0["bbpatch"] or backbone.startswith("timm:") or backbone in catalog.FAMILY_SCALES:
        return ()
    timm_name = catalog.lookup(backbone).timm_name
    return (
        f"{backbone} in this tree is its own class {layer0['cls']}, not bbpatch's: the YAML builds that one "
        f"(--backbone timm:{timm_name} builds bbpatch's TimmBackbone of the same timm model)",
    )


def build(package, text, name) -> dict:
    """``{"layer0": ...}`` when ``text`` builds and runs in ``package``'s tree, else ``{"error": its last line}``.

    The child works in this process's working directory, where the YAML's relative paths (a ``pretrained``
    checkpoint ``./w/x.pth``) mean what they will mean in training, and builds the YAML by its absolute path in
    a folder ultralytics' scale rule cannot misread (see ``probe_name``); only where no such folder can be had
    (a temp root that itself has a digit and a scale letter) does it work in the YAML's folder instead.
    """
    with scale_safe_folder() as folder:
        path = Path(folder, name)
        path.write_text(text, encoding="utf-8")
        if SCALE_RULE.search(str(path)):
            return run_probe(package, folder, [name])[0]
        return run_probe(package, os.getcwd(), [str(path)])[0]


SCALE_RULE = re.compile(r"\d+[nslmx]")  # what ultralytics' yaml_model_load rewrites in a YAML's path


@contextlib.contextmanager
def scale_safe_folder():
    """A temporary folder whose path has no digit before a scale letter, where one can be had in a few tries."""
    for _ in range(20):
        folder = tempfile.mkdtemp(prefix="bbpatch-yaml-")
        if not SCALE_RULE.search(folder) or _ == 19:
            break
        os.rmdir(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def probe_name(base_path):
    """The file name the derived YAML is built under, given relative to the child's working directory.

    ultralytics reads a YAML through ``re.sub(r"(\\d+)([nslmx])(.+)?$", r"\\1\\3", str(path))`` first: a digit and
    a scale letter anywhere in the path (``yolov8n.yaml``, a temp folder ``/tmp/x0l/``) would have it build the
    stock ``yolov8.yaml``, or miss the file. So: no folder, no digits; only the words ``YOLO()`` picks a model
    class by (``-world``, ``yoloe``). The derived ``scales`` start with the scale the base name asked for.
    """
    stem = Path(base_path).stem
    return "bbpatch-derived" + "".join(f"-{word}" for word in ("world", "yoloe") if word in stem) + ".yaml"


def run_probe(package, folder, names) -> list[dict]:
    """Build the YAMLs ``names`` of ``folder`` (the child's working directory) in ``package``'s tree."""
    root = Path(package).parent
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
    env.pop("BBPATCH_DISABLE", None)  # the hook patches a tree that is not patched on disk, for this build only
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    request = json.dumps(dict(package=str(package), yamls=list(names), size=PROBE_SIZE))
    script = (Path(__file__).parent / "probe.py").read_text(encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=request,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return [dict(error=f"building it took over {PROBE_TIMEOUT_S} s")] * len(names)
    answer = answer_of(result.stdout)
    if answer is None or "error" in answer:
        last = answer["error"] if answer else (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise DoesNotBuild(f"{package}: cannot build a YAML there to check it: {last}")
    return answer["answers"]


def answer_of(stdout):
    lines = [line[len(MARKER) :] for line in stdout.splitlines() if line.startswith(MARKER)]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
