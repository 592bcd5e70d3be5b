"""Crash safety with real processes: a real ``bbpatch apply`` / ``revert`` is SIGKILLed at chosen writes (the
``BBPATCH_KILL_AFTER_WRITES`` hook in bbpatch.disk.transaction), the disk is checked as the crash left it, and the
next command, any command, rolls the journal back to the exact tree from before the interrupted one."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from bbpatch import api
from bbpatch.disk.import_order import import_safe_order
from bbpatch.disk.journal import JOURNAL
from bbpatch.engine.tree import LOCK, find_tree

from helpers import run_cli, tree_bytes

TASKS = "ultralytics/nn/tasks.py"
ADDMODULES = "ultralytics/nn/Addmodules"


def _killed_at(root, n: int, command: str = "apply") -> subprocess.CompletedProcess:
    result = run_cli(command, str(root), env={"BBPATCH_KILL_AFTER_WRITES": str(n)})
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stdout, result.stderr)
    return result


def _apply_writes(root) -> list[str]:
    """The writes an apply of this tree makes, in order: the directories it creates, then each file."""
    tree = find_tree(root)
    _, writes = api.plan_apply(tree)
    before = {path: path.read_bytes() if path.is_file() else None for path in writes}
    made = [ADDMODULES, f"{ADDMODULES}/yamls"]
    return made + [f"ultralytics/{tree.key(p)}" for p in import_safe_order(tree.package, before, writes)]


def _crash_points(root) -> dict[str, int]:
    writes = _apply_writes(root)
    first_yaml = next(i for i, w in enumerate(writes) if w.endswith(".yaml"))
    return {
        "journal written, nothing else": 0,
        "Addmodules created": 1,
        "Addmodules package written": writes.index(f"{ADDMODULES}/__init__.py") + 1,
        "some YAMLs copied": first_yaml + 3,
        "tasks.py written": writes.index(TASKS) + 1,
        "every file written, journal not yet removed": len(writes),
    }


POINTS = [
    "journal written, nothing else",
    "Addmodules created",
    "Addmodules package written",
    "some YAMLs copied",
    "tasks.py written",
    "every file written, journal not yet removed",
]


def _outside(root) -> list[str]:
    """What lies beside the tree in the test's tmp dir."""
    return sorted(p.name for p in root.parent.iterdir())


@pytest.mark.parametrize("next_command", ["status", "revert", "apply"])
@pytest.mark.parametrize("point", POINTS)
def test_apply_killed_at_a_write_is_rolled_back_by_the_next_command(fresh_tree, patched_tree, point, next_command):
    before, beside = tree_bytes(fresh_tree), _outside(fresh_tree)
    written = _apply_writes(fresh_tree)
    n = _crash_points(fresh_tree)[point]
    _killed_at(fresh_tree, n)

    package = fresh_tree / "ultralytics"
    assert (package / JOURNAL).is_file()
    assert (package / LOCK).read_text().isdigit()  # the dead process's pid: a stale lock
    assert _outside(fresh_tree) == beside  # nothing written beside the tree
    on_disk = tree_bytes(fresh_tree)
    changed = {k for k in set(on_disk) | set(before) if on_disk.get(k) != before.get(k)}
    expected = {w for w in written[2:n] if not w.endswith("/")}  # the files the crash let through
    assert changed - {f"ultralytics/{JOURNAL}", f"ultralytics/{LOCK}"} == expected
    assert (package / "nn/Addmodules").is_dir() == (n >= 1)

    result = run_cli(next_command, str(fresh_tree))
    assert "an interrupted bbpatch apply was rolled back" in result.stdout, result.stdout + result.stderr
    if next_command == "apply":
        assert result.returncode == 0, result.stderr
        # fully applied, as if never interrupted
        assert tree_bytes(fresh_tree / "ultralytics") == tree_bytes(patched_tree / "ultralytics")
    else:
        assert result.returncode == {"status": 3, "revert": 0}[next_command], result.stderr
        assert tree_bytes(fresh_tree) == before  # the exact pre-apply tree
    assert _outside(fresh_tree) == beside
    assert not list(fresh_tree.rglob("*.bbpatch-tmp"))


def test_revert_killed_halfway_is_rolled_back_to_the_patched_tree(fresh_tree):
    before = tree_bytes(fresh_tree)
    assert run_cli("apply", str(fresh_tree)).returncode == 0
    patched = tree_bytes(fresh_tree)
    _killed_at(fresh_tree, 5, "revert")
    assert tree_bytes(fresh_tree) != patched  # the crash left a half-reverted tree

    status = run_cli("status", str(fresh_tree))
    assert status.returncode == 0 and "an interrupted bbpatch revert was rolled back" in status.stdout
    assert tree_bytes(fresh_tree) == patched
    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == before


def test_a_recovery_killed_halfway_is_finished_by_the_next_command(fresh_tree):
    before = tree_bytes(fresh_tree)
    _killed_at(fresh_tree, 20)  # apply dies with 18 files written
    _killed_at(fresh_tree, 3, "revert")  # revert's recovery dies after undoing 3 of them
    assert (fresh_tree / "ultralytics" / JOURNAL).is_file()
    result = run_cli("status", str(fresh_tree))
    assert result.returncode == 3 and "an interrupted bbpatch apply was rolled back" in result.stdout
    assert tree_bytes(fresh_tree) == before


def test_dry_run_also_rolls_back_first(fresh_tree):
    before = tree_bytes(fresh_tree)
    _killed_at(fresh_tree, 10)
    result = run_cli("apply", "--dry-run", str(fresh_tree))
    assert result.returncode == 0 and "rolled back" in result.stdout
    assert "+from ultralytics.nn.Addmodules import *" in result.stdout
    assert tree_bytes(fresh_tree) == before


@pytest.mark.parametrize("content", ["dead pid", "garbage", "empty"])
def test_a_stale_lock_is_taken_over(fresh_tree, content):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    text = {"dead pid": str(dead.pid), "garbage": "\x00\xffnot a pid\n", "empty": ""}[content]
    lock = fresh_tree / "ultralytics" / LOCK
    lock.write_text(text)
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 0, result.stderr
    assert not lock.exists()
    assert run_cli("status", str(fresh_tree)).returncode == 0


def test_a_tampered_journal_is_refused(fresh_tree):
    """A journal names paths too: one that points outside the package is not rolled back blindly."""
    before = tree_bytes(fresh_tree)
    journal = fresh_tree / "ultralytics" / JOURNAL
    journal.write_text('{"operation": "apply", "files": {"../../victim.txt": null}, "dirs": []}')
    victim = fresh_tree.parent / "victim.txt"
    victim.write_text("keep me\n")
    result = run_cli("status", str(fresh_tree))
    assert result.returncode == 2 and "not a bbpatch journal" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "keep me\n"
    assert {k: v for k, v in tree_bytes(fresh_tree).items() if not k.endswith(JOURNAL)} == before


HOLD_FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, str(os.getpid()).encode())
print("holding", flush=True)
sys.stdin.read()
"""


def test_the_journal_of_a_run_still_alive_is_left_alone(fresh_tree):
    """A journal is rolled back only by whoever holds the lock: while a live process holds it (its run is
    still writing), status refuses (exit 6) and touches nothing; once that process is gone, status recovers."""
    before = tree_bytes(fresh_tree)
    _killed_at(fresh_tree, 10)
    half_done = tree_bytes(fresh_tree)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FLOCK, str(fresh_tree / "ultralytics" / LOCK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        for command in ("status", "apply", "revert"):
            result = run_cli(command, str(fresh_tree))
            assert result.returncode == 6 and f"another bbpatch run (pid {holder.pid})" in result.stderr
        assert tree_bytes(fresh_tree) == {**half_done, f"ultralytics/{LOCK}": str(holder.pid).encode()}
    finally:
        holder.kill()
        holder.wait()
    result = run_cli("status", str(fresh_tree))
    assert result.returncode == 3 and "rolled back" in result.stdout
    assert tree_bytes(fresh_tree) == before
