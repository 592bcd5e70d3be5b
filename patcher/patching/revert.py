"""``bbpatch revert``: every file back as it was before apply, the user's own later edits kept."""

from __future__ import annotations

from pathlib import Path

from bbpatch.disk.manifest import CHANGED, FileRecord, Manifest, sha256
from bbpatch.disk.records import HandPatched, Report, read_file, read_manifest, read_sources
from bbpatch.disk.transaction import commit, locked, prune_empty_dirs
from bbpatch.engine.edits import FILES
from bbpatch.engine.sources import RevertRefused, hand_patch_evidence, unpatch_source
from bbpatch.engine.tree import ADDMODULES, LOCK, MANIFEST, Tree, find_tree


def _revert_changed(tree: Tree, key: str, record: FileRecord, force: bool, report: Report) -> dict[Path, bytes | None]:
    path = tree.file(key)
    data = read_file(tree, path)
    digest = sha256(data)
    if digest == record.patched_sha256 or data is None:
        return {path: record.original}
    if digest == record.original_sha256:
        return {}
    try:
        reverted = unpatch_source(tree, key, data)
        report.notes.append(f"{key}: changed since apply; removed bbpatch's edits and kept yours")
        return {path: reverted}
    except RevertRefused:
        if not force:
            raise
        backup = path.with_name(path.name + ".bbpatch-user")
        report.notes.append(f"{key}: restored the original; your edited version is saved as {backup}")
        return {backup: data, path: record.original}


def _unrecorded_edits_undone(tree: Tree, manifest: Manifest) -> dict[Path, bytes]:
    """Patched files the manifest has no record of: a merge re-applied edits to a file apply had left alone."""
    writes = {}
    for key in FILES:
        path = tree.file(key)
        if tree.key(path) in manifest.files or key in manifest.files or not path.is_file():
            continue
        data = path.read_bytes()
        reverted = unpatch_source(tree, key, data)
        if reverted != data:
            writes[path] = reverted
    return writes


def revert(path=None, force: bool = False) -> Report:
    tree = find_tree(path)
    with locked(tree.package / LOCK) as recovered:
        manifest = read_manifest(tree)
        if manifest is None:
            current = read_sources(tree)
            evidence = hand_patch_evidence(current)
            if evidence:
                raise HandPatched(
                    f"{tree.file(FILES[0])}: patched by hand, not by bbpatch ({'; '.join(evidence)}); "
                    "nothing of bbpatch's "
                    "to revert: restore it with git checkout or pip install --force-reinstall ultralytics"
                )
            return Report(tree, "clean", notes=[*recovered, "not patched: nothing to revert"])
        report = Report(tree, "reverted", bbpatch=manifest.bbpatch, notes=list(recovered))
        writes: dict[Path, bytes | None] = {}
        for key, record in manifest.files.items():
            if record.action == CHANGED:
                writes.update(_revert_changed(tree, key, record, force, report))
            elif sha256(read_file(tree, tree.file(key))) == record.patched_sha256:
                writes[tree.file(key)] = None
            elif tree.file(key).exists():
                report.notes.append(f"{key}: changed since apply; kept")
        writes.update(_unrecorded_edits_undone(tree, manifest))
        writes[tree.package / MANIFEST] = None
        commit(tree.package, writes, "revert")
        for directory in {tree.file(key).parent for key in manifest.files} | {tree.package / ADDMODULES}:
            prune_empty_dirs(directory, stop=tree.package)
    return report
