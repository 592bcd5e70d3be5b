"""``bbpatch status``: clean, patched, drifted or hand-patched, edit by edit."""

from __future__ import annotations

from bbpatch.disk.manifest import CREATED, Manifest, sha256
from bbpatch.disk.records import (
    Report,
    read_file,
    read_manifest,
    read_sources,
    release_notes,
    shipped_files,
    symlink_notes,
)
from bbpatch.disk.transaction import recover_pending
from bbpatch.engine.sources import edit_statuses, edits_for, hand_patch_evidence, parse_source
from bbpatch.engine.tree import Tree, find_tree
from bbpatch.models.roles import shipped_names


def carries_all_edits(tree: Tree, sources: dict[str, bytes]) -> tuple[bool, dict[str, str]]:
    """Every edit applied (or not needed) in ``sources``: the tree is fully patched, whatever the manifest says."""
    statuses = edit_statuses(tree, sources)
    return all(state in ("applied", "n/a") for state in statuses.values()), statuses


def _check_release_change(tree: Tree, manifest: Manifest, report: Report) -> None:
    """A new release under the patch: fine when a merge re-applied every edit (the merge driver does), else drift."""
    intact, statuses = carries_all_edits(tree, read_sources(tree))
    if intact:
        report.edits.update(statuses)
        new_files = [key for key in shipped_files(tree) if not tree.file(key).exists()]
        extra = f" and installs the {len(new_files)} files this release adds (YAMLs)" if new_files else ""
        report.notes.append(
            f"ultralytics {manifest.ultralytics} -> {tree.version} since apply, every edit re-applied by a merge; "
            f"'bbpatch apply' refreshes the manifest's record{extra}"
        )
    else:
        report.problems.append(
            f"ultralytics changed from {manifest.ultralytics} to {tree.version} since apply; run bbpatch apply"
        )


def status(path=None) -> Report:
    tree = find_tree(path)
    first_notes = recover_pending(tree.package) + symlink_notes(tree)
    manifest = read_manifest(tree)
    if manifest is None:
        current = read_sources(tree)
        statuses = edit_statuses(tree, current)
        evidence = hand_patch_evidence(current, shipped_names())
        return Report(tree, "hand-patched" if evidence else "clean", statuses, notes=first_notes + evidence)
    notes = first_notes + release_notes(tree)
    if manifest.adopted is not None:
        from bbpatch.adopt.adoption import status_note

        notes.append(status_note(manifest))
    report = Report(
        tree, "patched", dict(manifest.edits), bbpatch=manifest.bbpatch, notes=notes, adopted=manifest.adopted
    )
    if manifest.ultralytics != tree.version:
        _check_release_change(tree, manifest, report)
    for key, record in manifest.files.items():
        data = read_file(tree, tree.file(key))
        if sha256(data) == record.patched_sha256:
            continue
        if data is None:
            report.problems.append(f"{key}: missing (bbpatch {record.action} it)")
        elif record.action == CREATED:
            report.problems.append(f"{key}: changed since apply")
        else:
            module = parse_source(tree, key, data)
            for edit in edits_for(key):
                report.edits[edit.name] = edit.status(module)
                if report.edits[edit.name] not in ("applied", "n/a"):
                    report.problems.append(f"{key}: edit '{edit.name}' is {report.edits[edit.name]} ({edit.summary})")
            if not report.problems:
                report.notes.append(f"{key}: changed since apply, bbpatch's edits intact")
    if report.problems:
        report.state = "drifted"
    return report
