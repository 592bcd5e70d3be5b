"""The post-merge hook ``bbpatch git-setup`` installs: after a merge, bring each patched package's record up to date.

The merge driver already left every patched file right for the release merged in. What a merge cannot do is
rewrite bbpatch's own files: the manifest still records the release the patch was applied on, and YAMLs that
only the new release can build are not there yet. ``bbpatch apply`` does both; the hook runs it where the
release (or bbpatch) changed and tells the user what to commit. It never fails the merge.
"""

from __future__ import annotations

from pathlib import Path

from bbpatch import __version__
from bbpatch.disk.records import read_manifest
from bbpatch.engine.tree import ADDMODULES, TreeError, find_tree
from bbpatch.git.setup import tracked_packages
from bbpatch.patching.apply import apply
from bbpatch.patching.status import status


def stale_packages(repo: Path) -> list[Path]:
    """Patched packages in the repository whose manifest records another release or bbpatch version."""
    stale = []
    for package in tracked_packages(repo):
        root = repo / package if package else repo
        try:
            tree = find_tree(root)
            manifest = read_manifest(tree)
        except TreeError:
            continue
        if manifest is None or (manifest.ultralytics, manifest.bbpatch) == (tree.version, __version__):
            continue
        # only a tree whose every edit a merge re-applied: files without them (stashed away by
        # 'git pull --autostash', or taken from upstream by hand) wait for the user's own 'bbpatch apply'
        if status(root).state == "patched":
            stale.append(root)
    return stale


def post_merge(repo: Path) -> list[str]:
    """Refresh every stale package; return one line per package for the user."""
    lines = []
    for root in stale_packages(repo):
        try:
            report = apply(root)
        except TreeError as error:
            lines.append(f"bbpatch: {root}: not refreshed ({error})")
            continue
        if report.state == "already-patched":
            continue
        prefix = "" if root == repo else f"{root.relative_to(repo).as_posix()}/"
        yaml_dir = report.tree.yaml_dir
        folders = {ADDMODULES} if yaml_dir.startswith(f"{ADDMODULES}/") else {ADDMODULES, yaml_dir}
        paths = " ".join(sorted(f"{prefix}{folder}" for folder in folders))
        version = report.tree.version
        lines.append(
            f"bbpatch: refreshed the patch record and YAMLs for ultralytics {version} in {prefix or './'}; "
            f"commit them: git add {paths} && git commit -m 'bbpatch: refresh for ultralytics {version}'"
        )
    return lines
