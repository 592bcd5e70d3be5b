"""``bbpatch git-setup``: register bbpatch's merge driver for the files it patches, in one repository.

Three things are written, and ``--undo`` removes exactly those: one attributes line per patched file
(``/<package>/nn/tasks.py merge=bbpatch``, in ``.git/info/attributes``, or ``.gitattributes`` with
``--shared``), the ``merge.bbpatch`` section of the repository's own git config, and (unless ``--no-hook``)
a ``post-merge`` hook that brings the manifest and the release's YAMLs up to date after a merge.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bbpatch.disk.journal import write_durably
from bbpatch.disk.transaction import write_atomic
from bbpatch.engine.tree import find_tree
from bbpatch.git import repo as gitrepo
from bbpatch.git.repo import GitError

DRIVER = "bbpatch"
SECTION = f"merge.{DRIVER}"
DRIVER_NAME = "bbpatch: merge upstream into files bbpatch patched, then re-apply its edits"
COMMENT = "# bbpatch merge driver for the files it patches (bbpatch git-setup; remove: bbpatch git-setup --undo)"
PATCHED_FILES = ("nn/tasks.py", "utils/torch_utils.py", "yolo/utils/torch_utils.py")
HOOK = "post-merge"
HOOK_MARK = "# bbpatch post-merge hook (bbpatch git-setup; remove: bbpatch git-setup --undo)"


@dataclass
class Setup:
    repo: Path
    packages: list[str]  # package folders relative to the repository root, '' for the root itself
    attributes: Path
    changes: list[str] = field(default_factory=list)


def driver_command() -> str:
    """The driver line git runs: this Python's bbpatch, so the one the user set up with is the one that merges."""
    return f"{shlex.quote(sys.executable)} -m bbpatch merge-file %O %A %B --marker-size %L --path %P"


def hook_script() -> str:
    return f"#!/bin/sh\n{HOOK_MARK}\nexec {shlex.quote(sys.executable)} -m bbpatch git-hook {HOOK}\n"


def tracked_packages(repo: Path) -> list[str]:
    tracked = set(gitrepo.tracked_files(repo))
    found = []
    for path in sorted(tracked):
        if path == "nn/tasks.py" or path.endswith("/nn/tasks.py"):
            package = path[: -len("nn/tasks.py")]
            if f"{package}__init__.py" in tracked and (package == "" or package.endswith("ultralytics/")):
                found.append(package.rstrip("/"))
    return found


def find_packages(path: str | Path | None) -> tuple[Path, list[str]]:
    """The repository and the ultralytics package folders in it: PATH's package, else every tracked one."""
    if path is not None:
        package = find_tree(path).package
        repo = gitrepo.toplevel(package)
        relative = package.relative_to(repo).as_posix()
        return repo, ["" if relative == "." else relative]
    repo = gitrepo.toplevel(Path.cwd())
    packages = tracked_packages(repo)
    if not packages:
        raise GitError(f"{repo}: no ultralytics package is tracked in this repository; pass the package's PATH")
    return repo, packages


def attribute_lines(packages: list[str]) -> list[str]:
    lines = []
    for package in packages:
        if any(char.isspace() for char in package):
            raise GitError(f"{package}: git attributes cannot name a folder with spaces; rename it or set up by hand")
        prefix = f"/{package}/" if package else "/"
        lines += [f"{prefix}{name} merge={DRIVER}" for name in PATCHED_FILES]
    return lines


def _attributes_file(repo: Path, shared: bool) -> Path:
    return repo / ".gitattributes" if shared else gitrepo.git_path(repo, "info/attributes")


def _read_lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines() if path.is_file() else []


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))


def _is_our_hook(path: Path) -> bool:
    return path.is_file() and HOOK_MARK in path.read_text("utf-8", "replace").splitlines()[:2]


def install_hook(repo: Path, result: Setup) -> None:
    """Install the post-merge hook; a hook of the user's own is left alone, with the line to add to it."""
    hook = gitrepo.git_path(repo, f"hooks/{HOOK}")
    script = hook_script()
    if hook.exists() and not _is_our_hook(hook):
        result.changes.append(f"{hook}: yours, left alone; add this line to it: {script.splitlines()[-1][5:]}")
        return
    if hook.is_file() and hook.read_text("utf-8") == script:
        return
    hook.parent.mkdir(parents=True, exist_ok=True)
    write_durably(hook, script.encode("utf-8"), 0o755)
    result.changes.append(f"{hook}: installed (after a merge: bbpatch apply refreshes the record and YAMLs)")


def remove_hook(repo: Path, result: Setup) -> None:
    hook = gitrepo.git_path(repo, f"hooks/{HOOK}")
    if _is_our_hook(hook):
        hook.unlink()
        result.changes.append(f"{hook}: removed")


def setup(path=None, shared: bool = False, hook: bool = True) -> Setup:
    repo, packages = find_packages(path)
    result = Setup(repo, packages, _attributes_file(repo, shared))
    existing = _read_lines(result.attributes)
    missing = [line for line in attribute_lines(packages) if line not in existing]
    if missing:
        header = [] if COMMENT in existing else [COMMENT]
        _write_lines(result.attributes, existing + header + missing)
        result.changes += [f"{result.attributes}: added '{line}'" for line in missing]
    for key, value in (("name", DRIVER_NAME), ("driver", driver_command())):
        if gitrepo.config_get(repo, f"{SECTION}.{key}") != value:
            gitrepo.config_set(repo, f"{SECTION}.{key}", value)
            result.changes.append(f"git config {SECTION}.{key} = {value}")
    if hook:
        install_hook(repo, result)
    return result


def _is_ours(line: str) -> bool:
    if line == COMMENT:
        return True
    pattern, _, attribute = line.partition(" ")
    return attribute == f"merge={DRIVER}" and any(pattern.endswith("/" + name) for name in PATCHED_FILES)


def undo(path=None, shared: bool = False) -> Setup:
    repo, packages = find_packages(path)
    result = Setup(repo, packages, _attributes_file(repo, shared))
    existing = _read_lines(result.attributes)
    kept = [line for line in existing if not _is_ours(line)]
    if kept != existing and not kept:
        result.attributes.unlink()
    elif kept != existing:
        _write_lines(result.attributes, kept)
        result.changes += [f"{result.attributes}: removed '{line}'" for line in existing if _is_ours(line)]
    driver = gitrepo.config_get(repo, f"{SECTION}.driver")
    if driver is not None and "-m bbpatch merge-file" in driver:
        gitrepo.config_remove_section(repo, SECTION)
        result.changes.append(f"git config: removed [{SECTION}]")
    remove_hook(repo, result)
    return result
