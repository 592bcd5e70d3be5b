"""All-or-nothing writes: every new content is computed first, then written through temp files and atomic
renames; if any write fails, the files already written get their previous bytes back."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


class LockedError(Exception):
    pass


def _replace(source: str, destination: Path) -> None:
    os.replace(source, destination)  # module-level so tests can fail a write halfway


def write_atomic(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".bbpatch-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(temp, 0o644)
        _replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def commit(writes: dict[Path, bytes | None]) -> None:
    """Write (bytes) or delete (None) each path; on any failure restore everything touched and re-raise."""
    undo: list[tuple[Path, bytes | None]] = []
    made_dirs: list[Path] = []
    try:
        for path, data in writes.items():
            previous = path.read_bytes() if path.exists() else None
            if data is None:
                if previous is not None:
                    undo.append((path, previous))
                    path.unlink()
                continue
            made_dirs += _make_parents(path)
            undo.append((path, previous))
            write_atomic(path, data)
    except BaseException:
        for path, previous in reversed(undo):
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, previous)
        for directory in reversed(made_dirs):
            _remove_if_empty(directory)
        raise


def _make_parents(path: Path) -> list[Path]:
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for directory in missing:
        directory.mkdir()
    return missing


def _remove_if_empty(directory: Path) -> bool:
    try:
        directory.rmdir()
        return True
    except OSError:
        return False


def prune_empty_dirs(directory: Path, stop: Path) -> None:
    """Remove ``directory`` and its parents up to ``stop`` while they are empty (bytecode caches don't count)."""
    while directory != stop and directory.exists():
        cache = directory / "__pycache__"
        if cache.is_dir() and all(p.suffix == ".pyc" for p in cache.iterdir()) and len(list(directory.iterdir())) == 1:
            for pyc in cache.iterdir():
                pyc.unlink()
            cache.rmdir()
        if not _remove_if_empty(directory):
            return
        directory = directory.parent


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def locked(lock: Path):
    """One bbpatch run per tree. A lock left by a dead process is taken over."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            text = lock.read_text().strip() if lock.exists() else ""
            if text.isdigit() and _pid_alive(int(text)):
                raise LockedError(
                    f"{lock}: another bbpatch run (pid {text}) is working on this tree; wait for it to finish"
                ) from None
            lock.unlink(missing_ok=True)
    else:
        raise LockedError(f"{lock}: could not take the lock; delete it if no bbpatch run is active")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)
