"""The few git plumbing calls bbpatch needs, through the real ``git`` binary (never a library)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bbpatch.engine.tree import TreeError


class GitError(TreeError):
    """git is missing, the path is not in a repository, or a git command failed: nothing was changed."""


def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "LC_ALL": "C"}  # plain messages whatever the user's locale
    try:
        result = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env)
    except FileNotFoundError:
        raise GitError("git: not found on PATH; install git") from None
    if check and result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])}: {message[-1] if message else f'exit {result.returncode}'}")
    return result


def text(cwd: Path, *args: str) -> str:
    return git(cwd, *args).stdout.decode("utf-8", "surrogateescape").strip()


def toplevel(path: Path) -> Path:
    """The work tree root of the repository holding ``path`` (a submodule's own root inside a superproject)."""
    start = path if path.is_dir() else path.parent
    result = git(start, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise GitError(f"{path}: not inside a git work tree; run this in your fork's checkout (or git init first)")
    return Path(result.stdout.decode("utf-8", "surrogateescape").strip()).resolve()


def git_path(repo: Path, name: str) -> Path:
    """A path inside the repository's git directory (``info/attributes``, ``MERGE_HEAD``), worktrees included."""
    found = Path(text(repo, "rev-parse", "--git-path", name))
    return found if found.is_absolute() else repo / found


def config_get(repo: Path, key: str) -> str | None:
    result = git(repo, "config", "--local", "--get", key, check=False)
    return result.stdout.decode("utf-8", "surrogateescape").strip() if result.returncode == 0 else None


def config_set(repo: Path, key: str, value: str) -> None:
    git(repo, "config", "--local", key, value)


def config_remove_section(repo: Path, section: str) -> None:
    git(repo, "config", "--local", "--remove-section", section, check=False)


def tracked_files(repo: Path) -> list[str]:
    return [p for p in git(repo, "ls-files", "-z").stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def untracked(repo: Path, *paths: str) -> list[str]:
    """Untracked files under ``paths`` that git does not ignore."""
    listing = git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", *paths).stdout
    return [p for p in listing.decode("utf-8", "surrogateescape").split("\0") if p]


def unmerged(repo: Path) -> dict[str, dict[int, str]]:
    """Conflicted paths of an unfinished merge: path -> {stage: blob id} (1 base, 2 ours, 3 theirs)."""
    entries: dict[str, dict[int, str]] = {}
    for record in git(repo, "ls-files", "-u", "-z").stdout.decode("utf-8", "surrogateescape").split("\0"):
        if record:
            info, path = record.split("\t", 1)
            _mode, blob, stage = info.split()
            entries.setdefault(path, {})[int(stage)] = blob
    return entries


def blob(repo: Path, blob_id: str | None) -> bytes:
    return b"" if blob_id is None else git(repo, "cat-file", "blob", blob_id).stdout


def add(repo: Path, *paths: str) -> None:
    git(repo, "add", "--", *paths)


def merge_in_progress(repo: Path) -> bool:
    return git_path(repo, "MERGE_HEAD").exists()
