"""The writes that bring a tree to bbpatch's edits and shipped files, and the manifest recording them.

``bbpatch apply`` and ``bbpatch adopt`` plan with this one function; ``bbpatch.disk.transaction`` commits the plan.
"""

from __future__ import annotations

from pathlib import Path

from bbpatch.disk.manifest import CREATED, FileRecord, Manifest, sha256
from bbpatch.disk.records import check_replaceable, read_file
from bbpatch.engine.sources import patch_source
from bbpatch.engine.tree import MANIFEST, Tree


def planned_writes(
    tree: Tree,
    before: dict[str, bytes],
    bases: dict[str, bytes],
    current: dict[str, bytes],
    files: dict[str, bytes],
    old: Manifest | None,
    new: Manifest,
) -> dict[Path, bytes | None]:
    """bbpatch's edits on ``bases`` (``before``: what revert gives back), then ``files``, then ``new`` itself.

    ``current`` is each source as it is now; ``old`` the manifest found, whose created files this bbpatch no
    longer ships are deleted where nobody changed them. ``new`` gets the edits' statuses and every file's record.
    """
    writes: dict[Path, bytes | None] = {}
    for key, base in bases.items():
        patched, statuses = patch_source(tree, key, base)
        new.edits.update(statuses)
        if patched != before[key]:
            new.files[key] = FileRecord.changed(before[key], patched)
        if patched != current[key]:
            writes[tree.file(key)] = patched
    created_before = {k for k, r in (old.files.items() if old else ()) if r.action == CREATED}
    for key, data in files.items():
        existing = read_file(tree, tree.file(key))
        if existing is not None and existing != data:
            check_replaceable(tree, key, existing, old.files.get(key) if key in created_before else None)
        new.files[key] = FileRecord.created(data)
        if existing != data:
            writes[tree.file(key)] = data
    for key in created_before - set(new.files):  # shipped by an older bbpatch, not by this one
        if sha256(read_file(tree, tree.file(key))) == old.files[key].patched_sha256:
            writes[tree.file(key)] = None
    writes[tree.package / MANIFEST] = new.to_bytes()
    return writes
