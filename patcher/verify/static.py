"""The static half of verify: edits, installed files and release, read from disk without importing torch."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

from bbpatch.disk.manifest import CHANGED, CREATED, Manifest, sha256
from bbpatch.disk.records import Report, original_sources
from bbpatch.engine.edits import EDITS
from bbpatch.engine.tree import ADDMODULES, MANIFEST, NEWEST_RELEASE, OLDEST_RELEASE, Tree, in_tested_range
from bbpatch.models.roles import declared_role

from .results import FAIL, PASS, Result

GOOD_EDIT_STATES = ("applied", "n/a")
SUBJECT = "tree"


class NotPatched(Exception):
    """verify has nothing to check: the tree is not patched by bbpatch (exit 2)."""


@dataclasses.dataclass
class PatchedTree:
    tree: Tree
    manifest: Manifest
    status: Report

    @property
    def root(self) -> Path:
        """The folder to put first on sys.path: it holds the ``ultralytics`` package."""
        return self.tree.package.parent

    def yamls(self) -> list[Path]:
        """The model YAMLs bbpatch installed, as recorded in the manifest."""
        keys = [k for k, r in self.manifest.files.items() if r.action == CREATED and k.endswith(".yaml")]
        return [self.tree.package / k for k in sorted(keys)]

    def roles(self) -> dict:
        """Roles of bbpatch's classes, read where this tree keeps them (an adopted tree: nn/Addmodules/bbpatch)."""
        adopted = self.manifest.adopted
        return roles_in(self.tree.package / adopted["modules"]) if adopted else bbpatch_roles(self.tree.package)

    def build_digest(self) -> str:
        """What ``verify --fast``'s build cache keys this tree's builds by."""
        from .cache import tree_digest

        return tree_digest(self.tree.package)

    def file_results(self) -> list[Result]:
        return file_results(self)


def bbpatch_roles(package: Path) -> dict:
    """``{class name: role}`` for classes with a literal ``bbpatch_role`` in the tree's Addmodules files."""
    return roles_in(package / ADDMODULES)


def roles_in(folder: Path) -> dict:
    """``{class name: role}`` for classes with a literal ``bbpatch_role`` in the module files of ``folder``.

    Read with ``ast``, without importing them; classes generated at import time (the catalog's
    backbones) are known from ``bbpatch.models.catalog`` instead.
    """
    roles = {}
    for file in sorted(folder.glob("*.py")):
        try:
            module = ast.parse(file.read_text("utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue  # the runtime import reports it
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                role = declared_role(node)
                if role:
                    roles[node.name] = role
    return roles


def release_result(patched: PatchedTree, allow_untested: bool = False) -> Result:
    version, recorded = patched.tree.version, patched.manifest.ultralytics
    tested = f"{OLDEST_RELEASE} .. {NEWEST_RELEASE}"
    if version != recorded and patched.status.state != "patched":  # "patched": a merge re-applied every edit
        return Result(
            SUBJECT,
            "release",
            FAIL,
            f"tree is ultralytics {version} but was patched on {recorded}: run 'bbpatch apply'",
        )
    if in_tested_range(version):
        return Result(SUBJECT, "release", PASS, f"ultralytics {version} (tested {tested})")
    if allow_untested:
        return Result(SUBJECT, "release", PASS, f"ultralytics {version}, outside the tested {tested}: accepted")
    return Result(
        SUBJECT,
        "release",
        FAIL,
        f"ultralytics {version} is outside the tested {tested}; if the other checks pass, "
        "--allow-untested-release accepts it",
    )


def edit_results(patched: PatchedTree) -> list[Result]:
    """One failure per edit that is not in place; one pass for all of them otherwise."""
    edits = {e.name: e for e in EDITS}
    states = patched.status.edits
    failures = [
        Result(
            Path(edits[name].file).name if name in edits else SUBJECT,
            f"edit {name}",
            FAIL,
            edit_problem(name, state, edits),
        )
        for name, state in states.items()
        if state not in GOOD_EDIT_STATES
    ]
    missing = [name for name in edits if name not in states]
    failures += [
        Result(SUBJECT, f"edit {name}", FAIL, "not recorded in the manifest: run 'bbpatch apply'") for name in missing
    ]
    if failures:
        return failures
    applied = sum(state == "applied" for state in states.values())
    detail = f"{applied} edits applied, {len(states) - applied} not needed on this release"
    return [Result(SUBJECT, "edits", PASS, detail, data={"edits": dict(states)})]


def edit_problem(name, state, edits):
    summary = f" ({edits[name].summary})" if name in edits else ""
    where = f" in {edits[name].file}" if name in edits else ""
    return f"edit '{name}' is {state}{where}{summary}"


def file_results(patched: PatchedTree) -> list[Result]:
    """Every file bbpatch created must still hold the bytes it wrote; files it changed must exist."""
    failures = []
    for key, record in sorted(patched.manifest.files.items()):
        data = read_bytes(patched.tree.package / key)
        if data is None:
            failures.append(Result(key, "file", FAIL, f"{key}: missing (bbpatch {record.action} it)"))
        elif record.action == CREATED and sha256(data) != record.patched_sha256:
            failures.append(
                Result(key, "file", FAIL, f"{key}: changed since apply (run 'bbpatch apply' to restore it)")
            )
    if failures:
        return failures
    created = sum(r.action == CREATED for r in patched.manifest.files.values())
    changed = sum(r.action == CHANGED for r in patched.manifest.files.values())
    return [Result(SUBJECT, "files", PASS, f"{created} module files and YAMLs intact, {changed} patched files present")]


def read_bytes(path: Path):
    return path.read_bytes() if path.is_file() else None


def static_results(patched: PatchedTree, allow_untested: bool = False) -> list[Result]:
    return [release_result(patched, allow_untested), *edit_results(patched), *patched.file_results()]


def unpatched_copy(patched: PatchedTree, dest: Path) -> Path:
    """Rebuild the tree as it was before apply, from the manifest's original bytes; return the new root."""
    package = dest / "ultralytics"
    created = {k for k, r in patched.manifest.files.items() if r.action == CREATED} | {MANIFEST}
    shutil.copytree(
        patched.tree.package,
        package,
        ignore=lambda folder, names: ignored(patched.tree.package, Path(folder), names, created),
    )
    for key, original in original_sources(patched.tree, patched.manifest).items():
        (package / patched.tree.key(patched.tree.file(key))).write_bytes(original)
    addmodules = package / ADDMODULES
    if addmodules.is_dir() and not any(addmodules.iterdir()):
        addmodules.rmdir()
    return dest


def ignored(package: Path, folder: Path, names, created) -> set:
    relative = folder.relative_to(package)
    return {n for n in names if n == "__pycache__" or (relative / n).as_posix() in created}
