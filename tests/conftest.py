"""Shared fixtures: real ultralytics packages copied into temp dirs (installed one and downloaded releases)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bbpatch import api

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
    """The ``ultralytics`` package of a real release, downloaded once (pip download) and unzipped into the cache."""
    target = RELEASE_CACHE / version
    if not (target / "ultralytics" / "nn" / "tasks.py").exists():
        wheels = RELEASE_CACHE / "wheels"
        wheel = next(wheels.glob(f"ultralytics-{version}-*.whl"), None) if wheels.exists() else None
        if wheel is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    f"ultralytics=={version}",
                    "-d",
                    str(wheels),
                ],
                check=True,
            )
            wheel = next(wheels.glob(f"ultralytics-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if n.startswith("ultralytics/")]
            archive.extractall(target, members)
    return target / "ultralytics"


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
