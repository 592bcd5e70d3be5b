"""Finding the ultralytics tree to patch, without importing it."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bbpatch.engine.edits.base import TASKS


class TreeError(Exception):
    """A usage error about the target tree: nothing was changed."""


VERSION = re.compile(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", re.M)
ADDMODULES = "nn/Addmodules"
MANIFEST = f"{ADDMODULES}/bbpatch_manifest.json"
LOCK = ".bbpatch.lock"
# Up to 8.0.135 (the ultralytics/yolo/ layout) the packages utils and cfg live under yolo/.
LEGACY_DIRS = {"utils": "yolo/utils", "cfg": "yolo/cfg"}
# check_file searches only cfg/ (8.0.136 .. 8.0.239) or a list of directories with yolo/cfg (8.0.44 .. 8.0.135)
SEARCHES_CFG = re.compile(r"""ROOT\s*/\s*['"]cfg['"]\s*/\s*['"]\*\*['"]|for d in [^:]*['"]yolo/cfg['"]""")
# Releases the test suite runs on (tests/test_releases.py); outside them bbpatch still applies by what it finds.
TESTED_RELEASES = (
    "8.0.200",
    "8.0.238",
    "8.1.0",
    "8.1.47",
    "8.2.103",
    "8.3.0",
    "8.3.100",
    "8.3.253",
    "8.4.0",
    "8.4.100",
    "8.4.190",
)
OLDEST_RELEASE, NEWEST_RELEASE = TESTED_RELEASES[0], TESTED_RELEASES[-1]


def version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def in_tested_range(version: str) -> bool:
    return version_tuple(OLDEST_RELEASE) <= version_tuple(version) <= version_tuple(NEWEST_RELEASE)


@dataclass(frozen=True)
class Tree:
    package: Path  # the ``ultralytics`` package directory
    version: str

    @cached_property
    def moved(self) -> dict[str, str]:
        """Top-level folders this release keeps elsewhere: up to 8.0.135, ``utils/`` is ``yolo/utils/`` etc."""
        legacy = (self.package / "yolo" / "utils" / "__init__.py").is_file()
        return LEGACY_DIRS if legacy and not (self.package / "utils" / "__init__.py").is_file() else {}

    def file(self, key: str) -> Path:
        """The path of a file bbpatch names relative to the package (a manifest key, an edit's file).

        The one place where a key becomes a path: every read, write and delete goes through it, so apply,
        status and revert agree on where ``utils/torch_utils.py`` is in every layout.
        """
        head, _, rest = key.partition("/")
        if head in self.moved and rest:
            return self.package / self.moved[head] / rest
        return self.package / key

    def key(self, path: Path) -> str:
        return path.relative_to(self.package).as_posix()

    @property
    def yaml_dir(self) -> str:
        """Where model YAMLs go: under cfg/models/ where check_yaml searches only cfg/, else nn/Addmodules/yamls."""
        checks = self.file("utils/checks.py")
        searches_cfg = checks.exists() and SEARCHES_CFG.search(checks.read_text("utf-8"))
        return "cfg/models/Addmodules" if searches_cfg else f"{ADDMODULES}/yamls"

    def __str__(self) -> str:
        return f"{self.package} (ultralytics {self.version})"


def _package_dir(path: Path) -> Path | None:
    for candidate in (path / "ultralytics", path):
        if (candidate / TASKS).is_file():
            return candidate
    return None


def installed_package() -> Path | None:
    spec = importlib.util.find_spec("ultralytics")  # finds without importing a top-level package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_tree(path: str | Path | None = None) -> Tree:
    if path is not None:
        package = _package_dir(Path(path))
        if package is None:
            raise TreeError(
                f"{path}: no ultralytics package here (expected {path}/ultralytics/{TASKS} or {path}/{TASKS})"
            )
    else:
        package = _package_dir(Path("ultralytics")) or installed_package()
        if package is None:
            raise TreeError("no ./ultralytics and no installed ultralytics package: pass the tree's PATH")
    init = package / "__init__.py"
    found = VERSION.search(init.read_text("utf-8")) if init.exists() else None
    if not found:
        raise TreeError(f"{init}: no __version__ found; is this an ultralytics package?")
    return Tree(package=package.resolve(), version=found.group(1))
