"""The tree verify checks: patched on disk (``static.PatchedTree``), or patched in memory by the import hook
(``hooked.HookedTree``) when nothing on disk is."""

from __future__ import annotations

from bbpatch.disk.records import read_manifest
from bbpatch.engine.tree import find_tree
from bbpatch.patching.status import status

from .hooked import load_hooked
from .static import NotPatched, PatchedTree


def load(path) -> PatchedTree:
    """Find the tree and its manifest; raise NotPatched (or bbpatch's TreeError) when there is nothing to verify.

    A tree unpatched on disk that the import hook patches in memory (``bbpatch enable``) is verified as such.
    """
    tree = find_tree(path)
    report = status(tree.package)
    manifest = read_manifest(tree)
    if manifest is None:
        hooked = load_hooked(tree, report)
        if hooked is not None:
            return hooked
        hint = " (it looks patched by hand)" if report.state == "hand-patched" else ""
        raise NotPatched(f"{tree}: not patched by bbpatch{hint}; run 'bbpatch apply' (or 'bbpatch enable') first")
    return PatchedTree(tree, manifest, report)
