"""The write-ahead journal: before bbpatch changes a tree, it records how to undo the change.

Like sqlite's rollback journal: the journal (``ultralytics/.bbpatch-journal.json``) holds, for every path the
operation will write or delete, the bytes it had before (or that it did not exist) and the directories it will
create. It is written to a temp file, fsynced, renamed into place and its directory fsynced before the first
write; it is removed, the same way, after the last one. A journal found on disk therefore means an operation
was interrupted (a crash, ``kill -9``, power loss): rolling it back gives the exact tree from before that
operation, and rolling back again after a crash during the rollback is harmless.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bbpatch.disk.paths import UnsafePath, check_key
from bbpatch.engine.tree import TreeError

JOURNAL = ".bbpatch-journal.json"
TEMP_SUFFIX = ".bbpatch-tmp"


class JournalError(TreeError):
    """A journal file that bbpatch did not write: nothing acts on it."""


@dataclass
class Journal:
    operation: str  # what was interrupted: apply / revert
    before: dict[str, bytes | None] = field(default_factory=dict)  # key -> bytes before, None: did not exist
    made_dirs: list[str] = field(default_factory=list)  # keys of directories the operation creates, outermost first

    def to_bytes(self) -> bytes:
        files = {k: None if v is None else base64.b64encode(v).decode("ascii") for k, v in self.before.items()}
        return json.dumps({"operation": self.operation, "files": files, "dirs": self.made_dirs}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Journal:
        try:
            raw = json.loads(data)
            before = {
                check_key(k): None if v is None else base64.b64decode(v, validate=True) for k, v in raw["files"].items()
            }
            made_dirs = [check_key(d) for d in raw["dirs"]]
            operation = raw["operation"]
            if not isinstance(operation, str):
                raise TypeError("operation")
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnsafePath) as error:
            raise JournalError(f"not a bbpatch journal ({type(error).__name__}: {error})") from None
        return cls(operation, before, made_dirs)


def journal_path(package: Path) -> Path:
    return package / JOURNAL


def fsync_dir(directory: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be opened for fsync there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, mode: int = 0o644, sync: bool = True) -> None:
    """Temp file in the same directory, fsync, chmod, atomic rename: ``path`` has the old bytes or the new ones.

    ``sync=False`` leaves the flush to the caller: a commit flushes all its files at once (``flush``) before it
    removes the journal, so until then a crash still rolls every file back.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _syncfs(directory: Path) -> bool:
    """Linux's syncfs(2) on the file system holding ``directory``: one flush instead of one per file."""
    try:
        import ctypes

        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)


def flush(package: Path, paths) -> None:
    """Make every file written under ``package`` durable (data, names and folders) before the journal goes."""
    if _syncfs(package):
        return
    for path in paths:
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in {path.parent for path in paths}:
        fsync_dir(directory)


def begin(package: Path, journal: Journal) -> None:
    write_durably(journal_path(package), journal.to_bytes(), 0o600)
    fsync_dir(package)


def end(package: Path) -> None:
    journal_path(package).unlink(missing_ok=True)
    fsync_dir(package)


def pending(package: Path) -> Journal | None:
    path = journal_path(package)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise JournalError(f"{path}: cannot read the journal ({error.strerror})") from None
    try:
        return Journal.from_bytes(data)
    except JournalError as error:
        raise JournalError(
            f"{path}: {error}; check the tree by hand (git status / bbpatch status after removing it)"
        ) from None
