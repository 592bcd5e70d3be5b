"""What is in a tree and what bbpatch recorded of it: its sources, its manifest, the files bbpatch ships, the
sources as they were before apply, and the ``Report`` every command returns. Reads only; every read goes
through ``bbpatch.disk.paths`` (inside the package, never through a symlink out of it)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from bbpatch import __version__
from bbpatch.disk.manifest import FileRecord, Manifest, sha256
from bbpatch.disk.paths import outside_link
from bbpatch.disk.paths import read as read_checked
from bbpatch.engine.edits import FILES
from bbpatch.engine.encoding import decode
from bbpatch.engine.recipe import recipe_removed
from bbpatch.engine.sources import hand_patch_evidence, unpatch_source
from bbpatch.engine.tree import ADDMODULES, MANIFEST, NEWEST_RELEASE, OLDEST_RELEASE, Tree, TreeError, in_tested_range
from bbpatch.models.catalog import package_dir
from bbpatch.models.roles import shipped_names
from bbpatch.models.yaml_bases import unbuildable


class HandPatched(TreeError):
    """The tree carries the blog recipe's hand edits: bbpatch will not stack its own on top."""


class FileConflict(TreeError):
    """A file bbpatch would create already exists and is not bbpatch's."""


@dataclass
@dataclass
class Report:
    tree: Tree
    # apply: patched / already-patched / updated; revert: reverted / clean;
    # status: clean / patched / drifted / hand-patched
    state: str
    edits: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    diff: str = ""
    bbpatch: str | None = None
    adopted: dict | None = None  # the manifest's adoption record (bbpatch adopt), if any

    def as_dict(self) -> dict:
        return {
            "tree": str(self.tree.package),
            "ultralytics": self.tree.version,
            "state": self.state,
            "bbpatch": self.bbpatch,
            "edits": self.edits,
            "problems": self.problems,
            "notes": self.notes,
            "adopted": self.adopted,
        }


def read_file(tree: Tree, path: Path) -> bytes | None:
    """Every read goes through bbpatch.disk.paths: inside the package, never through a symlink out of it."""
    return read_checked(tree.package, path)


def symlink_notes(tree: Tree) -> list[str]:
    """Patched files that are symlinks out of the package: a write replaces the link, never its target."""
    notes = []
    for key in FILES:
        target = outside_link(tree.package, tree.file(key))
        if target is not None:
            notes.append(
                f"{tree.file(key)} is a symlink to {target}, outside the package: apply replaces the link "
                "with a patched file and leaves the target untouched; revert writes the original as a plain file"
            )
    return notes


def shipped_files(tree: Tree, modules: str = ADDMODULES) -> dict[str, bytes]:
    """Module files (in ``modules``: nn/Addmodules/bbpatch in an adopted tree) and YAMLs bbpatch installs, keyed by
    their path in the package.

    YAMLs whose stock model the release lacks (YOLO26 before 8.4...) are left out: it could not build them.
    """
    files = {f"{modules}/{p.name}": p.read_bytes() for p in sorted(package_dir("bbpatch.modules").glob("*.py"))}
    yamls = sorted(package_dir("bbpatch.yamls").glob("*.yaml"))
    lacking = unbuildable(tree.package, [p.name for p in yamls])
    files.update({f"{tree.yaml_dir}/{p.name}": p.read_bytes() for p in yamls if p.name not in lacking})
    return files


def read_sources(tree: Tree) -> dict[str, bytes]:
    return {key: read_source(tree, key) for key in FILES}


def read_source(tree: Tree, key: str) -> bytes:
    data = read_file(tree, tree.file(key))
    if data is None:
        raise TreeError(f"{tree.file(key)}: missing; reinstall ultralytics or check the PATH")
    return data


def read_manifest(tree: Tree) -> Manifest | None:
    data = read_file(tree, tree.package / MANIFEST)
    if data is None:
        return None
    try:
        return Manifest.from_bytes(data)
    except (ValueError, KeyError, TypeError) as error:
        raise TreeError(
            f"{tree.package / MANIFEST}: unreadable bbpatch manifest ({error}); restore it from a backup"
        ) from None


def unified_diff(tree: Tree, key: str, old: bytes | None, new: bytes | None) -> str:
    def lines(data):
        return [] if data is None else decode(data).splitlines(keepends=True)

    name = f"ultralytics/{key}"
    return "".join(difflib.unified_diff(lines(old), lines(new), f"a/{name}", f"b/{name}"))


def diff_of(tree: Tree, writes: dict[Path, bytes | None]) -> str:
    """The unified diff of a plan's writes (the manifest left out), for --dry-run."""
    return "".join(
        unified_diff(tree, tree.key(p), read_file(tree, p), data)
        for p, data in writes.items()
        if p.name != "bbpatch_manifest.json"
    )


def is_current(tree: Tree, manifest: Manifest) -> bool:
    if manifest.bbpatch != __version__ or manifest.ultralytics != tree.version:
        return False
    return all(
        sha256(read_file(tree, tree.file(key))) == record.patched_sha256 for key, record in manifest.files.items()
    )


def originals(tree: Tree, current: dict[str, bytes], manifest: Manifest | None) -> dict[str, bytes]:
    """The unpatched sources: as read, from the manifest, or with bbpatch's edits undone structurally."""
    if manifest is None:
        evidence = hand_patch_evidence(current, shipped_names())
        if evidence:
            raise HandPatched(
                f"{tree.file(FILES[0])}: looks patched by hand with the blog recipe ({'; '.join(evidence)}); "
                "restore the original (git checkout, or pip install --force-reinstall ultralytics), "
                "then run bbpatch apply"
            )
        return current
    originals = {}
    for key, data in current.items():
        record = manifest.files.get(key)
        if record and sha256(data) == record.patched_sha256:
            originals[key] = record.original if manifest.adopted is None else recipe_removed(key, record.original)
        else:
            originals[key] = unpatch_source(tree, key, data)
    return originals


def original_sources(tree: Tree, manifest: Manifest) -> dict[str, bytes]:
    """The patched files as they were before apply; after a merge, the merged upstream with the user's own lines."""
    return originals(tree, read_sources(tree), manifest)


def check_replaceable(tree: Tree, key: str, existing: bytes, record: FileRecord | None) -> None:
    """bbpatch replaces only files it created and nobody changed since."""
    if record is None:
        raise FileConflict(f"{tree.file(key)}: exists and is not bbpatch's; move it away, then run bbpatch apply")
    if sha256(existing) != record.patched_sha256:
        raise FileConflict(
            f"{tree.file(key)}: changed since bbpatch installed it; "
            "move your version to a new file, then run bbpatch apply"
        )


def release_notes(tree: Tree) -> list[str]:
    if in_tested_range(tree.version):
        return []
    return [
        f"ultralytics {tree.version} is outside the tested {OLDEST_RELEASE} .. {NEWEST_RELEASE}: run bbpatch verify"
    ]
