"""Every instant importable: a real ``bbpatch apply`` / ``revert`` SIGKILLed after each one of its writes, not a
sample (the ``BBPATCH_KILL_AFTER_WRITES`` hook), leaves a tree that ultralytics imports from as it stands, before
any bbpatch command runs: in a new process with the tree first on ``sys.path``, ``YOLO("yolov8n.yaml")`` builds
the stock model bit for bit (same seed, same weights as the stock tree's), and wherever ``tasks.py`` on disk is
the patched one a bbpatch YAML builds too, bit for bit as in a tree applied in one go. Then the next bbpatch
command rolls the journal back to the exact tree from before (bytes and folders).

Each kill point costs three new processes (the killed bbpatch, the builds, the recovering bbpatch): they are
forks of Pythons that imported bbpatch (resp. torch, timm, cv2 ...) once (``helpers.Preloaded``), which spares
each of the ~95 kill points per command an interpreter start-up and torch's import (3 s of a cold start here).
Nothing of ultralytics is preloaded: each fork imports it afresh from the tree.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bbpatch import api
from bbpatch.disk.journal import JOURNAL
from bbpatch.engine.tree import LOCK, find_tree

from helpers import Preloaded, tree_bytes, tree_env

STOCK = "yolov8n.yaml"
PATCHED = "yolov8-mobilenetv4.yaml"  # a timm backbone: the Addmodules package, its YAMLs and most tasks.py edits
TASKS = "nn/tasks.py"
# third-party modules ultralytics and the backbones import, nothing that a tree under test holds
THIRD_PARTY = ["torch", "torchvision", "timm", "numpy", "cv2", "yaml", "PIL.Image", "matplotlib", "polars", "psutil"]

BUILD = """
import hashlib, json, sys
assert not [name for name in sys.modules if name.startswith("ultralytics")]  # a fresh import, nothing cached
sys.path.insert(0, {root!r})
import torch
import ultralytics
from ultralytics import YOLO
assert ultralytics.__file__.startswith({root!r}), ultralytics.__file__

def fingerprint(name):
    torch.manual_seed(0)
    digest = hashlib.sha256()
    for key, tensor in YOLO(name).model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()

print(json.dumps({{name: fingerprint(name) for name in {names!r}}}))
"""
BBPATCH = "from bbpatch.cli import main\nmain({args!r}, prog_name='bbpatch')"


@pytest.fixture(scope="module")
def importer(tmp_path_factory):
    """New processes that import ultralytics from a tree given per run (torch and timm already loaded)."""
    # one torch thread: on a busy machine two wait on each other, a build takes ten times as long
    env = tree_env(tmp_path_factory.mktemp("yolo-settings"), {"OMP_NUM_THREADS": "1"})
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a training run writes bytecode into the tree: so do the builds here
    with Preloaded(THIRD_PARTY, env) as python:
        yield python


@pytest.fixture(scope="module")
def bbpatch_cli():
    """New processes that run the bbpatch CLI (bbpatch and libcst already loaded)."""
    with Preloaded(["bbpatch.cli"]) as python:
        yield python


def built(importer: Preloaded, root: Path, names: list[str], where: str = "") -> dict[str, str]:
    """The weights' fingerprint of each model YAML as a new process building it from ``root`` sees them."""
    result = importer.run(BUILD.format(root=str(root), names=names))
    assert result.returncode == 0, f"{where}: {names} do not build from {root}:\n{result.stdout[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def references(importer, pristine_tree, patched_tree) -> dict[str, str]:
    """The stock model from the stock tree, the backbone model from a tree applied in one go."""
    return {
        STOCK: built(importer, pristine_tree, [STOCK])[STOCK],
        PATCHED: built(importer, patched_tree, [PATCHED])[PATCHED],
    }


def folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")


def check_importable(importer, root: Path, patched_tasks: bytes, references: dict[str, str], where: str) -> None:
    tasks_patched = (root / "ultralytics" / TASKS).read_bytes() == patched_tasks
    names = [STOCK, PATCHED] if tasks_patched else [STOCK]
    assert built(importer, root, names, where) == {name: references[name] for name in names}, where


def killed_after_each_write(bbpatch_cli, command: str, root: Path, between, recovered, step: int = 1) -> int:
    """Run ``bbpatch command`` killed after write 0, step, 2 * step ... until a run gets to the end; return the
    index of the first write the command got past, so ``step=1`` returns the kills (every write)."""
    kills = 0
    while True:
        run = bbpatch_cli.run(BBPATCH.format(args=[command, str(root)]), {"BBPATCH_KILL_AFTER_WRITES": str(kills)})
        if run.returncode == 0:
            return kills
        assert run.returncode == -signal.SIGKILL, (kills, run.returncode, run.stdout)
        assert (root / "ultralytics" / JOURNAL).is_file()
        between(kills)
        recovered(kills)
        kills += step


def writes_planned(tree) -> int:
    """The writes apply plans, as the kill hook counts them: its files and the folders it creates."""
    _, writes = api.plan_apply(tree)
    written = [path for path, data in writes.items() if data is not None]
    made = {folder for path in written for folder in path.parents if tree.package in folder.parents}
    return len(writes) + len({folder for folder in made if not folder.exists()})


def test_apply_killed_after_any_write_leaves_ultralytics_importable(
    bbpatch_cli, importer, references, fresh_tree, patched_tree
):
    before, before_folders = tree_bytes(fresh_tree), folders(fresh_tree)
    patched_tasks = (patched_tree / "ultralytics" / TASKS).read_bytes()
    planned = writes_planned(find_tree(fresh_tree))

    def between(n):
        check_importable(importer, fresh_tree, patched_tasks, references, f"apply killed after write {n}")

    def recovered(n):
        result = bbpatch_cli.run(BBPATCH.format(args=["revert", str(fresh_tree)]))
        assert result.returncode == 0 and "an interrupted bbpatch apply was rolled back" in result.stdout, result.stdout
        assert tree_bytes(fresh_tree) == before, f"apply killed after write {n}: not rolled back exactly"
        assert folders(fresh_tree) == before_folders, f"apply killed after write {n}: folders left behind"

    kills = killed_after_each_write(bbpatch_cli, "apply", fresh_tree, between, recovered)
    assert kills == planned + 1  # killed after the journal (write 0) and after every one of its writes
    assert tree_bytes(fresh_tree / "ultralytics") == tree_bytes(patched_tree / "ultralytics")
    check_importable(importer, fresh_tree, patched_tasks, references, "applied")


def test_revert_killed_after_any_write_leaves_ultralytics_importable(
    bbpatch_cli, importer, references, fresh_tree, patched_tree
):
    stock, stock_folders = tree_bytes(fresh_tree), folders(fresh_tree)
    api.apply(fresh_tree)
    patched, patched_folders = tree_bytes(fresh_tree), folders(fresh_tree)
    patched_tasks = (fresh_tree / "ultralytics" / TASKS).read_bytes()
    manifest = api.read_manifest(find_tree(fresh_tree))

    def between(n):
        check_importable(importer, fresh_tree, patched_tasks, references, f"revert killed after write {n}")

    def recovered(n):
        result = bbpatch_cli.run(BBPATCH.format(args=["status", str(fresh_tree)]))
        assert result.returncode == 0 and "an interrupted bbpatch revert was rolled back" in result.stdout, (
            result.stdout
        )
        assert tree_bytes(fresh_tree) == patched, f"revert killed after write {n}: not rolled back exactly"
        assert folders(fresh_tree) == patched_folders

    kills = killed_after_each_write(bbpatch_cli, "revert", fresh_tree, between, recovered)
    assert kills == len(manifest.files) + 2  # every file it wrote or deleted, the manifest's deletion, write 0
    assert tree_bytes(fresh_tree) == stock and folders(fresh_tree) == stock_folders
    assert not (fresh_tree / "ultralytics" / LOCK).exists()
    check_importable(importer, fresh_tree, patched_tasks, references, "reverted")
