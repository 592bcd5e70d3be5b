"""``bbpatch resolve``: settle a merge that already conflicted, for users who merged without the driver.

Each conflicted file bbpatch patches is merged again from git's three index stages, as the driver would
have merged it, written back and staged. When every such file came out clean and the package is patched,
the manifest is refreshed for the release now in the tree and staged too, so the merge commit holds a
tree that a fresh ``bbpatch apply`` would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bbpatch.disk.manifest import CREATED
from bbpatch.disk.records import read_manifest
from bbpatch.disk.transaction import commit, locked
from bbpatch.engine.tree import LOCK, MANIFEST, TreeError, find_tree
from bbpatch.git import repo as gitrepo
from bbpatch.git.merge import managed_key, merge_patched
from bbpatch.git.repo import GitError
from bbpatch.patching.apply import apply

BASE, OURS, THEIRS = 1, 2, 3


@dataclass
class Resolution:
    repo: Path
    resolved: list[str] = field(default_factory=list)  # merged clean and staged
    conflicted: list[str] = field(default_factory=list)  # 'path: why' for managed files still conflicted
    others: list[str] = field(default_factory=list)  # conflicted files bbpatch does not manage
    notes: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.conflicted


def conflict_style(repo: Path) -> str:
    style = gitrepo.config_get(repo, "merge.conflictStyle") or "merge"
    return style if style in ("merge", "diff3", "zdiff3") else "merge"


def _work_file(repo: Path, path: str) -> Path:
    target = (repo / path).resolve()
    if repo not in target.parents:
        raise GitError(f"{path}: resolves outside the repository ({target}); refusing to write it")
    return target


def _write(package: Path, path: Path, data: bytes, result: Resolution) -> None:
    """Through bbpatch's one write path: the tree's lock, the journal, a temp file and a rename."""
    package = package.resolve()
    with locked(package / LOCK) as recovered:
        result.notes += recovered
        commit(package, {path: data}, operation="resolve")


def _resolve_one(repo: Path, path: str, stages: dict[int, str], style: str, result: Resolution) -> None:
    if OURS not in stages or THEIRS not in stages:
        result.conflicted.append(f"{path}: deleted on one side; decide by hand (git rm or git add)")
        return
    base, ours, theirs = (gitrepo.blob(repo, stages.get(stage)) for stage in (BASE, OURS, THEIRS))
    try:
        merged = merge_patched(path, base, ours, theirs, style=style)
    except TreeError as error:
        result.conflicted.append(f"{path}: {error}")
        return
    _write(repo / _package_of(path), _work_file(repo, path), merged.data, result)
    if merged.conflicts:
        result.conflicted.append(f"{path}: {merged.conflicts} conflict(s) in your own lines; edit, then git add")
    elif merged.problem:
        result.conflicted.append(f"{path}: merged, but bbpatch's edits could not be re-applied: {merged.problem}")
    else:
        gitrepo.add(repo, path)
        result.resolved.append(path)


def _package_of(path: str) -> str:
    return path[: -len(managed_key(path))].rstrip("/")


def _refresh_manifest(repo: Path, package: str, unmerged: set[str], result: Resolution) -> None:
    """Re-apply on the merged package so the manifest names the new release; stage what that rewrote."""
    root = repo / package if package else repo
    prefix = f"{package}/" if package else ""
    if not (root / MANIFEST).exists() or f"{prefix}__init__.py" in unmerged:
        return
    if f"{prefix}{MANIFEST}" in unmerged:  # both sides re-applied: ours, then brought up to date below
        ours = gitrepo.git(repo, "show", f":2:{prefix}{MANIFEST}").stdout
        _write(root, root.resolve() / MANIFEST, ours, result)
    try:
        report = apply(root)
    except TreeError as error:
        result.notes.append(f"{prefix}: merged, but the manifest was not refreshed ({error}); run bbpatch apply")
        return
    _stage_installed_files(repo, root, prefix)
    if report.state != "already-patched":
        result.notes.append(f"{prefix}{MANIFEST}: refreshed for ultralytics {report.tree.version} and staged")


def _stage_installed_files(repo: Path, root: Path, prefix: str) -> None:
    """Stage what the refresh changed: bbpatch's own files (a new release may take more YAMLs) and the manifest."""
    manifest = read_manifest(find_tree(root))
    created = [f"{prefix}{key}" for key, record in manifest.files.items() if record.action == CREATED]
    folders = sorted({str(Path(key).parent) for key in created})
    gitrepo.git(repo, "add", "-u", "--", *folders)  # changed or removed tracked files
    new = set(gitrepo.untracked(repo, *folders)) & set(created)  # new files, unless the user ignores them
    gitrepo.add(repo, f"{prefix}{MANIFEST}", *sorted(new))


def resolve(path=None) -> Resolution:
    repo = gitrepo.toplevel(Path(path) if path else Path.cwd())
    entries = gitrepo.unmerged(repo)
    if not entries:
        if gitrepo.merge_in_progress(repo):
            raise GitError(f"{repo}: the merge has no conflicted file left; commit it (git commit)")
        raise GitError(f"{repo}: no merge in progress and no conflicted file; nothing to resolve")
    result = Resolution(repo)
    style = conflict_style(repo)
    packages = set()
    for path_in_repo, stages in sorted(entries.items()):
        if managed_key(path_in_repo) is None:
            if not path_in_repo.endswith(MANIFEST):
                result.others.append(path_in_repo)
            continue
        _resolve_one(repo, path_in_repo, stages, style, result)
        packages.add(_package_of(path_in_repo))
    if result.done:
        for package in sorted(packages):
            _refresh_manifest(repo, package, set(entries), result)
    still = {p for p in gitrepo.unmerged(repo) if p.endswith(MANIFEST)}
    result.others += sorted(still)
    return result
