"""The library's one face: apply, revert, status and adopt, and what they report. The CLI is a thin layer over it.

Nothing here imports torch, timm or ultralytics. The work is done in the rooms below (docs/architecture.md):
``bbpatch.engine`` edits sources, ``bbpatch.disk`` reads trees and is the one way to write, ``bbpatch.patching``
plans and commits apply / revert / status, ``bbpatch.adopt`` takes over trees patched by hand.
"""

from __future__ import annotations

from bbpatch.adopt.adoption import NotAdoptable, adopt
from bbpatch.disk.records import (
    FileConflict,
    HandPatched,
    Report,
    check_replaceable,
    diff_of,
    original_sources,
    read_file,
    read_manifest,
    read_source,
    release_notes,
    shipped_files,
    symlink_notes,
)
from bbpatch.engine.sources import (
    LEFTOVER_MARKS,
    RevertRefused,
    edit_statuses,
    hand_patch_evidence,
    patch_source,
    unpatch_source,
)
from bbpatch.engine.tree import Tree, TreeError, find_tree
from bbpatch.patching.apply import apply, plan_apply
from bbpatch.patching.revert import revert
from bbpatch.patching.status import carries_all_edits, status

__all__ = [
    "LEFTOVER_MARKS",
    "FileConflict",
    "HandPatched",
    "NotAdoptable",
    "Report",
    "RevertRefused",
    "Tree",
    "TreeError",
    "adopt",
    "apply",
    "carries_all_edits",
    "check_replaceable",
    "diff_of",
    "edit_statuses",
    "find_tree",
    "hand_patch_evidence",
    "original_sources",
    "patch_source",
    "plan_apply",
    "read_file",
    "read_manifest",
    "read_source",
    "release_notes",
    "revert",
    "shipped_files",
    "status",
    "symlink_notes",
    "unpatch_source",
]
