"""Shared fixtures: real ultralytics packages copied into temp dirs (installed one and downloaded releases)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from filelock import FileLock

from bbpatch import api

from helpers import CONFIG_ROOT, THREADS

if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", THREADS)  # the worker's own torch (not imported yet) shares the cores too

RELEASE_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "releases"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def installed_package() -> Path:
    spec = importlib.util.find_spec("ultralytics")
    return Path(next(iter(spec.submodule_search_locations)))


def copy_package(package: Path, root: Path) -> Path:
    """A root dir holding a copy of ``package`` as ``root/ultralytics``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, root / "ultralytics", ignore=IGNORE)
    return root


def release_package(version: str) -> Path:
    """The ``ultralytics`` package of a real release, downloaded once (pip download) and unzipped into the cache.

    The cache is shared (by xdist workers, by checkouts linking one ``.cache``): one process at a time fills it,
    and a tree appears whole or not at all (unzipped beside it, renamed into place).
    """
    target = RELEASE_CACHE / version
    if not (target / "ultralytics" / "nn" / "tasks.py").exists():
        RELEASE_CACHE.mkdir(parents=True, exist_ok=True)
        with cache_lock():
            if not (target / "ultralytics" / "nn" / "tasks.py").exists():
                unzip_release(release_wheel(version), target)
    return target / "ultralytics"


def cache_lock() -> FileLock:
    """Held while anything is added to ``.cache/releases`` (a file there, so no ``*/ultralytics`` glob sees it)."""
    return FileLock(str(RELEASE_CACHE / ".lock"))


def release_wheel(version: str) -> Path:
    wheels = RELEASE_CACHE / "wheels"
    wheel = next(wheels.glob(f"ultralytics-{version}-*.whl"), None) if wheels.exists() else None
    if wheel is None:
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"ultralytics=={version}"]
        subprocess.run([*download, "-d", str(wheels)], check=True)
        wheel = next(wheels.glob(f"ultralytics-{version}-*.whl"))
    return wheel


def unzip_release(wheel: Path, target: Path) -> None:
    partial = RELEASE_CACHE / ".partial"  # two levels down: ``RELEASE_CACHE.glob("*/ultralytics/...")`` skips it
    partial.mkdir(exist_ok=True)
    unzipped = Path(tempfile.mkdtemp(dir=partial, prefix=f"{target.name}-"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unzipped, [n for n in archive.namelist() if n.startswith("ultralytics/")])
    if target.exists():  # left half-unzipped by a run killed before this cache unzipped into a temporary folder
        shutil.rmtree(target)
    unzipped.rename(target)


@pytest.fixture(scope="session", autouse=True)
def private_state(tmp_path_factory):
    """The session's own cache home (bbpatch's verify and hook caches) and settings for the trees' ultralytics:
    none shared with the other xdist worker, another checkout's test run or the developer's own ``~/.cache``."""
    state = tmp_path_factory.getbasetemp()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PIP_CACHE_DIR", os.environ.get("PIP_CACHE_DIR") or str(Path(cache_home, "pip")))  # pip's stays
        env.setenv("XDG_CACHE_HOME", str(state / "cache-home"))
        env.setenv(CONFIG_ROOT, str(state / "yolo-settings"))
        yield


@pytest.fixture(scope="session")
def pristine_tree(tmp_path_factory) -> Path:
    """An unpatched copy of the installed ultralytics package (do not modify)."""
    return copy_package(installed_package(), tmp_path_factory.mktemp("pristine"))


@pytest.fixture(scope="session")
def patched_tree(tmp_path_factory) -> Path:
    """A patched copy of the installed ultralytics package (do not modify: shared by the session)."""
    root = copy_package(installed_package(), tmp_path_factory.mktemp("patched"))
    api.apply(root)
    return root


@pytest.fixture
def fresh_tree(tmp_path) -> Path:
    """A fresh unpatched copy of the installed ultralytics package, free to modify."""
    return copy_package(installed_package(), tmp_path / "tree")
