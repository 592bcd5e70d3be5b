"""Path hygiene in one place: every path bbpatch reads, writes or deletes in a tree is checked here first.

Paths come from the tree (the files bbpatch patches, the files it ships) or from data on disk (the manifest,
the journal). Both get the same check: a relative, normalised POSIX path inside the package, reached without
a directory symlink that leads out of it. A file that is itself a symlink is read through (it is what Python
imports) but never written through: a write replaces the link, the file it pointed to stays untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

from bbpatch.engine.tree import TreeError


class UnsafePath(TreeError):
    """A path that would leave the package: nothing was read, written or deleted."""


class ReadError(TreeError):
    """A file in the tree could not be read."""


def check_key(key: object) -> str:
    """``key`` if it is a relative, normalised POSIX path (no ``..``, ``.``, empty parts, backslashes, NULs)."""
    if not isinstance(key, str) or not key:
        raise UnsafePath(f"{key!r}: not a path")
    parts = key.split("/")
    if key.startswith("/") or "\\" in key or "\0" in key or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{key!r}: not a relative, normalised path inside the package")
    return key


def _escaping_link(package: Path, path: Path) -> Path | None:
    """The first directory between ``package`` and ``path`` that is a symlink resolving outside the package."""
    directory = package
    for part in path.relative_to(package).parts[:-1]:
        directory = directory / part
        if directory.is_symlink() and not _within(package, directory.resolve()):
            return directory
    return None


def _within(package: Path, path: Path) -> bool:
    return path == package or package in path.parents


def inside(package: Path, path: Path) -> Path:
    """``path`` after checking it is in ``package`` (a resolved directory) and reached without leaving it."""
    try:
        key = path.relative_to(package).as_posix()
    except ValueError:
        raise UnsafePath(f"{path}: outside the ultralytics package {package}; refusing to touch it") from None
    check_key(key)
    link = _escaping_link(package, path)
    if link is not None:
        raise UnsafePath(
            f"{link}: a symlink out of the package (to {link.resolve()}); bbpatch will not write through it: "
            "replace it with a real directory, then run bbpatch again"
        )
    if not _within(package, path.parent.resolve()):
        raise UnsafePath(f"{path}: resolves outside the package ({path.parent.resolve()}); refusing to touch it")
    return path


def under(package: Path, key: object) -> Path:
    """The checked path of a package-relative ``key`` (from the manifest, the journal or the tree)."""
    return inside(package, package / check_key(key))


def read(package: Path, path: Path) -> bytes | None:
    """The bytes of ``path`` (checked), or None if there is no file."""
    inside(package, path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ReadError(f"{path}: cannot read ({os_cause(error)})") from None


def outside_link(package: Path, path: Path) -> Path | None:
    """Where ``path`` points if it is a symlink to a file outside the package (reported, never written through)."""
    if path.is_symlink():
        target = path.resolve()
        return None if _within(package, target) else target
    return None


def os_cause(error: OSError) -> str:
    """The cause of an OS error in a few words: 'Permission denied', 'No space left on device'."""
    return error.strerror or (os.strerror(error.errno) if error.errno else str(error)) or type(error).__name__
