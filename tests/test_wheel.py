"""The built wheel, installed in a venv without torch, timm or ultralytics: pip builds it from a clean copy of the
checkout, pip installs it with no dependencies into a fresh venv that sees only bbpatch's light runtime dependencies,
and that venv's ``bbpatch`` console script applies, reports and reverts a copy of a real ultralytics tree."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bbpatch import __version__, api
from tests.conftest import copy_package, installed_package
from tests.helpers import run_cli, tree_bytes

REPO = Path(__file__).resolve().parent.parent
# Each source folder and where setup.cfg's package_dir puts it in the installed package.
SHIPPED = {
    "patcher": "bbpatch",
    "modules": "bbpatch/modules",
    "templates": "bbpatch/templates",
    "yamls": "bbpatch/yamls",
}
HEAVY = ("torch", "timm", "ultralytics")
# What a checkout holds besides its sources: a stale build/ or egg-info would leak old files into the wheel.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", ".cache", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", "*-out"
)
# The project venv (the one holding libcst): its setuptools builds wheels by itself, offline (a layered worktree
# venv can shadow it with an older setuptools that needs the wheel package).
PROJECT_PYTHON = Path(importlib.metadata.distribution("libcst").locate_file("")).parents[2] / "bin" / "python"


def run(*command, env=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr}"
    return result


def source_files() -> dict[str, bytes]:
    """Every file of the shipped source folders, by the path it has under site-packages."""
    files = {}
    for folder, installed_as in SHIPPED.items():
        for name, data in tree_bytes(REPO / folder).items():
            if not name.endswith(".pyc"):
                files[f"{installed_as}/{name}"] = data
    return files


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(archive.read(metadata).decode())
    return [Requirement(line) for line in headers.get_all("Requires-Dist") or ()]


def light_distributions(wheel: Path) -> list[importlib.metadata.Distribution]:
    """The wheel's runtime dependencies but torch, timm and ultralytics, with theirs, as installed here."""
    pending, found = wheel_requirements(wheel), {}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in HEAVY or name in found or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        found[name] = importlib.metadata.distribution(name)
        pending += [Requirement(line) for line in found[name].requires or ()]
    return list(found.values())


def link_distributions(distributions, folder: Path) -> None:
    """``folder`` holds a link to every top-level module, package and dist-info of ``distributions``."""
    folder.mkdir()
    for dist in distributions:
        tops = {Path(f).parts[0] for f in dist.files or () if not str(f).startswith("..")} - {"__pycache__"}
        assert tops, f"{dist.metadata['Name']} lists no files (no RECORD): cannot layer it into the test venv"
        for top in tops:
            (folder / top).symlink_to(Path(dist.locate_file(top)))


class WheelVenv:
    """A fresh venv: the built bbpatch wheel its own, the light dependencies seen through one .pth line."""

    def __init__(self, root: Path):
        self.wheel = self.build_wheel(root)
        venv = root / "venv"
        run(sys.executable, "-m", "venv", "--without-pip", venv)
        self.python, self.script = venv / "bin" / "python", venv / "bin" / "bbpatch"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BBPATCH_", "PYTHON", "VIRTUAL_ENV"))}
        self.site = Path(self.run_python("-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
        link_distributions(light_distributions(self.wheel), root / "light-deps")
        (self.site / "bbpatch-test-light-deps.pth").write_text(f"{root / 'light-deps'}\n")
        pip = (PROJECT_PYTHON, "-m", "pip", "--python", self.python)
        run(*pip, "install", "-q", "--no-deps", "--no-index", self.wheel)

    @staticmethod
    def build_wheel(root: Path) -> Path:
        source, out = root / "source", root / "wheelhouse"
        shutil.copytree(REPO, source, ignore=NOT_SOURCES)
        run(PROJECT_PYTHON, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, source)
        (wheel,) = out.glob("bbpatch-*.whl")
        return wheel

    def run_python(self, *args) -> str:
        return run(self.python, *args, env=self.env).stdout

    def bbpatch(self, *args) -> subprocess.CompletedProcess:
        return run(self.script, *args, env=self.env, check=False)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> WheelVenv:
    return WheelVenv(tmp_path_factory.mktemp("wheel-venv"))


PROBE = """
import importlib, json, sys
import bbpatch
missing = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing[name] = error.name
print(json.dumps({"bbpatch": bbpatch.__file__, "missing": missing}))
"""


def test_the_installed_wheel_holds_every_file_of_the_source_packages(wheel_venv):
    expected = source_files()
    installed = {
        f"bbpatch/{name}": data
        for name, data in tree_bytes(wheel_venv.site / "bbpatch").items()
        if not name.endswith(".pyc")
    }
    missing, extra = sorted(expected.keys() - installed.keys()), sorted(installed.keys() - expected.keys())
    assert not missing, f"not in the wheel (a package missing from setup.cfg's packages / package_data?): {missing}"
    assert not extra, f"in the wheel but not in the sources: {extra}"
    assert [name for name in expected if expected[name] != installed[name]] == []


def test_the_venv_has_no_torch_timm_or_ultralytics_and_bbpatch_runs(wheel_venv):
    probe = json.loads(wheel_venv.run_python("-c", PROBE, *HEAVY))
    assert probe["missing"] == {name: name for name in HEAVY}, "the test venv must not see torch, timm or ultralytics"
    assert Path(probe["bbpatch"]).is_relative_to(wheel_venv.site / "bbpatch"), "bbpatch is not the wheel's"
    version = wheel_venv.bbpatch("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"bbpatch, version {__version__}"), version.stderr


def paths(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_the_wheels_bbpatch_applies_reports_and_reverts_an_ultralytics_tree(wheel_venv, tmp_path):
    root = copy_package(installed_package(), tmp_path / "tree")
    reference = copy_package(installed_package(), tmp_path / "reference")
    api.apply(reference)  # the checkout's own bbpatch, in this process
    stock, stock_paths = tree_bytes(root), paths(root)

    applied = wheel_venv.bbpatch("apply", root)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    patched = tree_bytes(root)
    assert patched["ultralytics/nn/tasks.py"] != stock["ultralytics/nn/tasks.py"]
    assert patched == tree_bytes(reference), "the wheel's apply wrote a tree other than the checkout's apply"

    status = wheel_venv.bbpatch("status", root, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert (report["state"], report["bbpatch"], report["problems"]) == ("patched", __version__, [])
    assert report["edits"] and set(report["edits"].values()) == {"applied"}
    assert report == json.loads(run_cli("status", str(root), "--json").stdout), "the checkout's status differs"

    reverted = wheel_venv.bbpatch("revert", root)
    assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    assert tree_bytes(root) == stock, "revert did not restore every file byte for byte"
    assert paths(root) == stock_paths, "revert left something behind (the manifest, Addmodules, a folder)"
    assert not (root / "ultralytics" / "nn" / "Addmodules").exists()
    assert wheel_venv.bbpatch("status", root).returncode == 3, "a reverted tree is not reported clean"
