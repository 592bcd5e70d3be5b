"""Real write failures, real processes: a folder made read-only for real, a file size limit the kernel enforces.
Each failure is one line naming the file and the cause, a non-zero exit, and the tree exactly as before.

Read-only folders: with ``chmod`` for an ordinary user; tests often run as root, for whom ``chmod`` stops
nothing, so there the folder gets the immutable attribute (``chattr +i``), which stops root too. (The same
failures at any chosen write, simulated in-process, are in tests/test_safety.py.)
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from contextlib import contextmanager

import pytest

from helpers import tree_bytes


@contextmanager
def read_only(directory):
    """``directory`` made read-only for real (no entry can be created, renamed or removed in it)."""
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        undo = lambda: directory.chmod(mode)  # noqa: E731
    else:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(directory)]).returncode != 0:
            pytest.skip("root without chattr +i: no real read-only folder here (simulated: tests/test_safety.py)")
        undo = lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)  # noqa: E731
    try:
        with pytest.raises(PermissionError):
            (directory / ".probe").write_bytes(b"")  # the mechanism really stops writes
        yield
    finally:
        undo()


def bbpatch(*args: str, limit_file_size: int | None = None) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "bbpatch", *args],
        capture_output=True,
        text=True,
        preexec_fn=limit if limit_file_size else None,
    )


def assert_one_line_error(result, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    for word in words:
        assert word in error, error


CAUSE = "Permission denied" if os.geteuid() != 0 else "Operation not permitted"


def test_apply_with_utils_unwritable_but_nn_writable_rolls_back_tasks_py(fresh_tree):
    """Addmodules, its YAMLs, the manifest and tasks.py are written, then torch_utils.py (the last write) fails:
    all of it must go back."""
    before = tree_bytes(fresh_tree)
    with read_only(fresh_tree / "ultralytics/utils"):
        result = bbpatch("apply", str(fresh_tree))
    assert_one_line_error(result, "utils/torch_utils.py: cannot write", CAUSE, "nothing was changed")
    assert tree_bytes(fresh_tree) == before
    assert not (fresh_tree / "ultralytics/nn/Addmodules").exists()
    assert not list(fresh_tree.rglob("*.bbpatch-tmp"))


def test_apply_with_nn_unwritable_changes_nothing(fresh_tree):
    before = tree_bytes(fresh_tree)
    with read_only(fresh_tree / "ultralytics/nn"):
        result = bbpatch("apply", str(fresh_tree))
    assert_one_line_error(result, "nn/Addmodules: cannot write", CAUSE)
    assert tree_bytes(fresh_tree) == before


def test_a_package_folder_that_is_read_only_is_refused_before_anything(fresh_tree):
    before = tree_bytes(fresh_tree)
    with read_only(fresh_tree / "ultralytics"):
        for command in ("apply", "revert"):
            assert_one_line_error(
                bbpatch(command, str(fresh_tree)), ".bbpatch.lock: cannot create the lock file", CAUSE
            )
    assert tree_bytes(fresh_tree) == before


def test_revert_with_utils_unwritable_keeps_the_patched_tree(fresh_tree):
    """Revert restores tasks.py, then fails on torch_utils.py before it deletes any module file: tasks.py is
    patched again, the tree stays patched and a later revert (once writable) gives back the original."""
    before = tree_bytes(fresh_tree)
    assert bbpatch("apply", str(fresh_tree)).returncode == 0
    patched = tree_bytes(fresh_tree)
    with read_only(fresh_tree / "ultralytics/utils"):
        result = bbpatch("revert", str(fresh_tree))
    assert_one_line_error(result, "utils/torch_utils.py: cannot write", CAUSE)
    assert tree_bytes(fresh_tree) == patched
    assert bbpatch("status", str(fresh_tree)).returncode == 0
    assert bbpatch("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == before


def test_a_write_over_the_file_size_limit_is_one_line_and_changes_nothing(fresh_tree):
    """RLIMIT_FSIZE is the kernel's own 'no more room' for a process (root included): a write past it fails
    with EFBIG, as a full disk fails with ENOSPC. The journal, the largest file apply writes, hits it first."""
    before = tree_bytes(fresh_tree)
    result = bbpatch("apply", str(fresh_tree), limit_file_size=64 * 1024)
    assert_one_line_error(result, ".bbpatch-journal.json: cannot write (File too large)", "nothing was changed")
    assert tree_bytes(fresh_tree) == before


def test_an_unreadable_tree_file_is_one_line(fresh_tree):
    """A torch_utils.py that is not a file (a folder in its place) cannot be read: a clear error, no traceback."""
    torch_utils = fresh_tree / "ultralytics/utils/torch_utils.py"
    torch_utils.unlink()
    torch_utils.mkdir()
    before = tree_bytes(fresh_tree)
    for command in ("status", "apply"):
        assert_one_line_error(bbpatch(command, str(fresh_tree)), "utils/torch_utils.py: cannot read", "Is a directory")
    assert tree_bytes(fresh_tree) == before
