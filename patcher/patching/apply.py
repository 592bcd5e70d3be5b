"""``bbpatch apply``: plan every write (edits on the original sources, shipped files, manifest), then commit it."""

from __future__ import annotations

from pathlib import Path

from bbpatch import __version__
from bbpatch.disk.manifest import Manifest
from bbpatch.disk.records import (
    Report,
    is_current,
    originals,
    read_file,
    read_manifest,
    read_sources,
    release_notes,
    shipped_files,
    symlink_notes,
    unified_diff,
)
from bbpatch.disk.transaction import commit, locked, recover_pending
from bbpatch.disk.writes import planned_writes
from bbpatch.engine.tree import LOCK, Tree, find_tree


def plan_apply(tree: Tree) -> tuple[Report, dict[Path, bytes | None]]:
    manifest = read_manifest(tree)
    if manifest is not None and is_current(tree, manifest):
        return Report(tree, "already-patched", dict(manifest.edits), bbpatch=manifest.bbpatch), {}
    if manifest is not None and manifest.adopted is not None:
        from bbpatch.adopt.adoption import plan_update

        return plan_update(tree, manifest)
    current = read_sources(tree)
    bases = originals(tree, current, manifest)
    new_manifest = Manifest(__version__, tree.version)
    writes = planned_writes(tree, bases, bases, current, shipped_files(tree), manifest, new_manifest)
    state = "patched" if manifest is None else "updated"
    return Report(tree, state, new_manifest.edits, bbpatch=__version__), writes


def apply(path=None, dry_run: bool = False) -> Report:
    tree = find_tree(path)
    if dry_run:
        recovered = recover_pending(tree.package)
        report, writes = plan_apply(tree)
        report.notes += recovered
        report.diff = "".join(
            unified_diff(tree, tree.key(p), read_file(tree, p), data)
            for p, data in writes.items()
            if not p.name.endswith(".json")
        )
        return report
    with locked(tree.package / LOCK) as recovered:
        report, writes = plan_apply(tree)
        report.notes += recovered + symlink_notes(tree)
        commit(tree.package, writes, "apply")
    report.notes += release_notes(tree)
    return report
