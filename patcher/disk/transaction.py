"""All-or-nothing changes to a tree: the one place every write, delete and mkdir goes through.

``commit(package, writes)`` checks every path (bbpatch.disk.paths), records how to undo the whole change in a
write-ahead journal (bbpatch.disk.journal), then writes each file through a temp file and an atomic rename, in
import-safe order (bbpatch.disk.import_order: what a module will import is in place before it, a module lets go of
an import before what it imported changes or goes), so that at every instant between two writes the tree
still imports; a rollback writes in that order too. If a write fails, the journal is rolled back in the same
process and the failure becomes one ``WriteError`` line naming the file and the cause. If the process dies
instead, the journal is still there: the next bbpatch command rolls it back (``locked`` and
``recover_pending``) and says so.

Test hook: with ``BBPATCH_KILL_AFTER_WRITES=N`` in the environment, the process sends itself SIGKILL right
after its Nth write, delete or mkdir in a tree (``0``: right after the journal is written, before any write).
Rollback writes count too, so a test can also kill a recovery halfway.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

from bbpatch.disk import journal
from bbpatch.disk.import_order import import_safe_order
from bbpatch.disk.journal import TEMP_SUFFIX, Journal, write_durably
from bbpatch.disk.paths import inside, os_cause, under
from bbpatch.engine.tree import LOCK, TreeError

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock (Windows): the lock file is created exclusively instead
    fcntl = None

KILL_AFTER_WRITES = "BBPATCH_KILL_AFTER_WRITES"
LOCK_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (0 if fcntl else os.O_EXCL)
_writes_done = 0


class LockedError(Exception):
    pass


class WriteError(TreeError):
    """A write to the tree failed: the change was rolled back (or the journal left for the next command)."""


# --- the one write path ----------------------------------------------------------------------------------------------


def _wrote() -> None:
    """Count a write; the test hook kills the process after the chosen one."""
    global _writes_done
    _writes_done += 1
    _kill_if_due()


def _kill_if_due() -> None:
    due = os.environ.get(KILL_AFTER_WRITES)
    if due is not None and due.strip().isdigit() and _writes_done == int(due):
        os.kill(os.getpid(), signal.SIGKILL)


def _write(path: Path, data: bytes, sync: bool = True) -> None:
    mode = path.stat().st_mode & 0o7777 if path.is_file() and not path.is_symlink() else 0o644
    write_durably(path, data, mode, sync)
    _wrote()


def _delete(path: Path) -> None:
    path.unlink()
    _wrote()


def _mkdir(directory: Path) -> None:
    directory.mkdir()
    _wrote()


def write_atomic(path: Path, data: bytes) -> None:
    """One file, all or nothing, outside any tree's transaction (git-setup's attributes file), keeping its mode."""
    mode = path.stat().st_mode & 0o7777 if path.is_file() else 0o644
    write_durably(path, data, mode)


def _remove_if_empty(directory: Path) -> bool:
    try:
        directory.rmdir()
        return True
    except OSError:
        return False


# --- commit and roll back --------------------------------------------------------------------------------------------


def _missing_parents(package: Path, paths) -> list[Path]:
    missing = []
    for path in paths:
        for directory in reversed(path.parents):
            if package in directory.parents and not directory.exists() and directory not in missing:
                missing.append(directory)
    return missing


def _plan(package: Path, writes: dict[Path, bytes | None]) -> Journal:
    before = {}
    for path in writes:
        inside(package, path)
        try:
            before[path.relative_to(package).as_posix()] = path.read_bytes() if path.is_file() else None
        except OSError as error:
            raise WriteError(f"{path}: cannot read ({os_cause(error)}); nothing was changed") from None
    made = _missing_parents(package, [p for p, data in writes.items() if data is not None])
    return Journal("write", before, [d.relative_to(package).as_posix() for d in made])


def commit(package: Path, writes: dict[Path, bytes | None], operation: str = "write") -> None:
    """Write (bytes) or delete (None) each path in ``package``: all of it, or, if anything fails, none of it."""
    if not writes:
        return
    plan = _plan(package, writes)
    plan.operation = operation
    try:
        journal.begin(package, plan)
    except OSError as error:
        journal.journal_path(package).unlink(missing_ok=True)
        raise WriteError(
            f"{journal.journal_path(package)}: cannot write ({os_cause(error)}); nothing was changed"
        ) from None
    _kill_if_due()
    current = None
    try:
        for directory in plan.made_dirs:
            current = package / directory
            _mkdir(current)
        before = {path: plan.before[path.relative_to(package).as_posix()] for path in writes}
        for current in import_safe_order(package, before, writes):
            if writes[current] is None:
                if current.is_file() or current.is_symlink():
                    _delete(current)
            else:
                _write(current, writes[current], sync=False)
        journal.flush(package, list(writes))
        journal.end(package)
    except OSError as error:
        raise WriteError(f"{current}: cannot write ({os_cause(error)}); {_undo(package, plan)}") from None
    except BaseException:
        _undo(package, plan)
        raise


def _undo(package: Path, plan: Journal) -> str:
    try:
        roll_back(package, plan)
    except OSError as error:
        return f"rolling back failed too ({os_cause(error)}); the next bbpatch command finishes the rollback"
    return "nothing was changed (rolled back)"


def roll_back(package: Path, plan: Journal) -> None:
    """Put every path in ``plan`` back as it was, remove the directories it made, then the journal."""
    now, restore = {}, {}
    for key, data in plan.before.items():
        path = under(package, key)
        now[path] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        if now[path] != data or (data is None and path.is_symlink()):
            restore[path] = data
    for path in import_safe_order(package, now, restore):
        if restore[path] is None:
            _delete(path)
        else:
            _write(path, restore[path], sync=False)
    journal.flush(package, list(restore))  # once for all, as commit does: until the journal goes, a crash rolls back
    for key in {*plan.before, *plan.made_dirs}:
        _remove_temp_files(under(package, key).parent)
    for key in reversed(plan.made_dirs):
        _remove_bytecode_cache(package, under(package, key))
        _remove_if_empty(under(package, key))
    journal.end(package)


def _remove_temp_files(directory: Path) -> None:
    if directory.is_dir():
        for temp in directory.glob(f".*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)


def _remove_bytecode_cache(package: Path, directory: Path) -> None:
    """The ``__pycache__`` of a folder that holds nothing else: Python wrote it when something imported the
    folder's modules (a training run between a crash and the rollback), so it goes with them."""
    cache = inside(package, directory / "__pycache__")
    if not cache.is_dir() or cache.is_symlink() or len(list(directory.iterdir())) != 1:
        return
    pycs = list(cache.iterdir())
    if all(p.suffix == ".pyc" and p.is_file() and not p.is_symlink() for p in pycs):
        for pyc in pycs:
            pyc.unlink()
        cache.rmdir()


def prune_empty_dirs(directory: Path, stop: Path) -> None:
    """Remove ``directory`` and its parents up to ``stop`` while they are empty (bytecode caches don't count)."""
    while directory != stop and directory.exists():
        _remove_bytecode_cache(stop, directory)
        if not _remove_if_empty(directory):
            return
        directory = directory.parent


# --- lock and recovery -----------------------------------------------------------------------------------------------


def _recover(package: Path) -> list[str]:
    """Roll back an interrupted operation's journal, if there is one (the caller holds the lock)."""
    plan = journal.pending(package)
    if plan is None:
        _remove_temp_files(package)
        return []
    try:
        roll_back(package, plan)
    except OSError as error:
        raise WriteError(
            f"{journal.journal_path(package)}: an interrupted bbpatch {plan.operation} could not be rolled back "
            f"({os_cause(error)}); fix the cause and run bbpatch status again"
        ) from None
    return [
        f"an interrupted bbpatch {plan.operation} was rolled back: the tree is as it was before it "
        f"({len(plan.before)} files checked)"
    ]


def recover_pending(package: Path) -> list[str]:
    """For read-only commands: roll back an interrupted operation if one left its journal (takes the lock)."""
    if not journal.journal_path(package).exists():
        return []
    with locked(package / LOCK) as notes:
        return notes


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _open_lock(lock: Path) -> int:
    try:
        return os.open(lock, LOCK_FLAGS, 0o644)
    except FileExistsError:
        raise LockedError(f"{lock}: another bbpatch run holds this tree; delete the file if none is active") from None
    except OSError as error:
        raise WriteError(f"{lock}: cannot create the lock file ({os_cause(error)}); nothing was changed") from None


def _take(lock: Path) -> int:
    """An open descriptor holding the lock. The kernel drops a flock when its process dies, so a lock file left
    by a dead process (whatever it holds: a dead pid, garbage) is simply taken over."""
    for _ in range(10):
        fd = _open_lock(lock)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"{lock}: another bbpatch run (pid {_holder(lock)}) is working on this tree; wait for it to finish"
            ) from None
        if _same_file(fd, lock):  # not unlinked by the previous holder between our open and our flock
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)
    raise LockedError(f"{lock}: could not take the lock; delete it if no bbpatch run is active")


def _same_file(fd: int, lock: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
    except FileNotFoundError:
        return False


@contextmanager
def locked(lock: Path):
    """One bbpatch run per tree; yields the notes of the recovery it runs first (an interrupted run rolled back)."""
    fd = _take(lock)
    try:
        yield _recover(lock.parent)
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
