"""Nothing lost, never half-patched: failed writes roll back, user files and later edits survive, bad input
changes nothing, and apply/revert/status never import torch, timm or ultralytics."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys

import pytest

import bbpatch
from bbpatch import api
from bbpatch.disk import transaction
from bbpatch.engine.tree import LOCK, MANIFEST, TreeError

from helpers import tree_bytes

TASKS = "ultralytics/nn/tasks.py"


def _fail_at_write(monkeypatch, n: int) -> dict:
    """Simulated: the one write function raises ENOSPC at its nth call (real failures: tests/test_write_errors.py)."""
    calls = {"n": 0}
    real_write = transaction._write

    def write_then_fail(path, data, sync=True):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data, sync)

    monkeypatch.setattr(transaction, "_write", write_then_fail)
    return calls


def test_write_failing_halfway_leaves_the_tree_untouched(fresh_tree, monkeypatch):
    before = tree_bytes(fresh_tree)
    calls = _fail_at_write(monkeypatch, 3)  # the third file apply writes: a YAML (files that are not modules go first)
    with pytest.raises(transaction.WriteError, match=r"\.yaml: cannot write \(No space left on device\); nothing was"):
        api.apply(fresh_tree)
    assert calls["n"] >= 3
    assert tree_bytes(fresh_tree) == before
    assert not (fresh_tree / "ultralytics/nn/Addmodules").exists()
    assert not list(fresh_tree.rglob("*.bbpatch-tmp"))


def test_revert_failing_halfway_keeps_the_patched_tree(fresh_tree, monkeypatch):
    api.apply(fresh_tree)
    patched = tree_bytes(fresh_tree)
    _fail_at_write(monkeypatch, 1)  # tasks.py's restore fails
    with pytest.raises(transaction.WriteError, match="tasks.py: cannot write"):
        api.revert(fresh_tree)
    assert tree_bytes(fresh_tree) == patched


def test_user_edit_in_patched_file_survives_revert(fresh_tree):
    before = tree_bytes(fresh_tree)
    api.apply(fresh_tree)
    tasks = fresh_tree / TASKS
    tasks.write_text(tasks.read_text() + "\n\ndef my_helper():\n    return 42\n")
    report = api.revert(fresh_tree)
    assert any("kept yours" in note for note in report.notes)
    text = tasks.read_text()
    assert text == before[TASKS].decode() + "\n\ndef my_helper():\n    return 42\n"


def test_edited_bbpatch_code_is_refused_then_forced_with_backup(fresh_tree):
    api.apply(fresh_tree)
    tasks = fresh_tree / TASKS
    edited = tasks.read_text().replace(
        "bbpatch_save_backbone_outputs(x, y, self.save)", "bbpatch_save_backbone_outputs(x, y, self.save)  # mine", 1
    )
    edited = edited.replace('if vars(m).get("backbone", False):', "if vars(m).get('backbone'):", 1)
    tasks.write_text(edited)
    with pytest.raises(api.RevertRefused, match="nn/tasks.py: bbpatch's inserted code was edited"):
        api.revert(fresh_tree)
    assert tasks.read_text() == edited
    api.revert(fresh_tree, force=True)
    assert (fresh_tree / (TASKS + ".bbpatch-user")).read_text() == edited
    assert "bbpatch" not in tasks.read_text()


def test_a_tree_patched_by_bbpatch_0_1_0_is_upgraded_by_apply_and_reverts_exactly(fresh_tree):
    """0.1.0 wrapped the forward loops' appends in ``if getattr(m, "backbone", False):``."""
    before = tree_bytes(fresh_tree)
    api.apply(fresh_tree)
    tasks, manifest_file = fresh_tree / TASKS, fresh_tree / "ultralytics" / MANIFEST
    old_form = tasks.read_text().replace('if vars(m).get("backbone", False):', 'if getattr(m, "backbone", False):')
    tasks.write_text(old_form)
    manifest = json.loads(manifest_file.read_text())
    manifest["bbpatch"] = "0.1.0"
    manifest["files"]["nn/tasks.py"]["patched_sha256"] = hashlib.sha256(old_form.encode()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))
    assert api.status(fresh_tree).state == "patched"

    api.apply(fresh_tree)
    upgraded = tasks.read_text()
    assert 'getattr(m, "backbone", False)' not in upgraded and upgraded.count('vars(m).get("backbone"') == 4
    assert json.loads(manifest_file.read_text())["bbpatch"] == bbpatch.__version__
    api.revert(fresh_tree)
    assert tree_bytes(fresh_tree) == before


def test_user_files_in_addmodules_are_kept_and_folder_stays(fresh_tree):
    api.apply(fresh_tree)
    mine = fresh_tree / "ultralytics/nn/Addmodules/my_backbone.py"
    mine.write_text("# mine\n")
    api.revert(fresh_tree)
    assert mine.read_text() == "# mine\n"
    assert sorted(p.name for p in mine.parent.iterdir()) == ["my_backbone.py"]


def test_revert_leaves_no_empty_addmodules(fresh_tree):
    api.apply(fresh_tree)
    (fresh_tree / "ultralytics/nn/Addmodules/__pycache__").mkdir(exist_ok=True)
    (fresh_tree / "ultralytics/nn/Addmodules/__pycache__/x.cpython-311.pyc").write_bytes(b"")
    api.revert(fresh_tree)
    assert not (fresh_tree / "ultralytics/nn/Addmodules").exists()


def test_apply_never_overwrites_a_users_file(fresh_tree):
    clash = fresh_tree / "ultralytics/nn/Addmodules/timm_backbones.py"
    clash.parent.mkdir(parents=True)
    clash.write_text("# user's own\n")
    before = tree_bytes(fresh_tree)
    with pytest.raises(api.FileConflict, match="timm_backbones.py: exists and is not bbpatch's"):
        api.apply(fresh_tree)
    assert tree_bytes(fresh_tree) == before


def test_update_never_overwrites_a_changed_module_file(fresh_tree):
    api.apply(fresh_tree)
    runtime = fresh_tree / "ultralytics/nn/Addmodules/_runtime.py"
    runtime.write_text(runtime.read_text() + "# my tweak\n")
    manifest_path = fresh_tree / "ultralytics" / MANIFEST
    manifest_path.write_text(manifest_path.read_text().replace('"bbpatch": "', '"bbpatch": "0.0.0-', 1))
    before = tree_bytes(fresh_tree)
    with pytest.raises(api.FileConflict, match="_runtime.py: changed since bbpatch installed it"):
        api.apply(fresh_tree)
    assert tree_bytes(fresh_tree) == before


RECIPE_IMPORT = "from ultralytics.nn.Addmodules import *\n"


def test_hand_patched_tree_is_recognised_and_refused(fresh_tree):
    tasks = fresh_tree / TASKS
    text = tasks.read_text()
    anchor = "from ultralytics.utils import"
    tasks.write_text(
        text.replace(anchor, RECIPE_IMPORT + anchor, 1).replace("ch.append(c2)", "ch.append(c2)  # width_list", 1)
    )
    before = tree_bytes(fresh_tree)
    assert api.status(fresh_tree).state == "hand-patched"
    with pytest.raises(api.HandPatched, match="looks patched by hand with the blog recipe"):
        api.apply(fresh_tree)
    assert tree_bytes(fresh_tree) == before


def test_upstream_update_is_drift_and_apply_repatches(fresh_tree):
    """A pull/reinstall replaces tasks.py with a fresh upstream copy: status says which edits are lost."""
    original = (fresh_tree / TASKS).read_bytes()
    api.apply(fresh_tree)
    (fresh_tree / TASKS).write_bytes(original + b"\n# upstream change\n")
    report = api.status(fresh_tree)
    assert report.state == "drifted"
    assert any("edit 'backbone_branch' is missing" in p for p in report.problems)
    assert api.apply(fresh_tree).state == "updated"
    assert api.status(fresh_tree).state == "patched"
    api.revert(fresh_tree)
    assert (fresh_tree / TASKS).read_bytes() == original + b"\n# upstream change\n"


def test_changed_module_file_is_drift(fresh_tree):
    api.apply(fresh_tree)
    runtime = fresh_tree / "ultralytics/nn/Addmodules/_runtime.py"
    runtime.write_text(runtime.read_text() + "# changed\n")
    assert api.status(fresh_tree).problems == ["nn/Addmodules/_runtime.py: changed since apply"]


def test_older_bbpatch_tree_is_updated_in_place(fresh_tree):
    api.apply(fresh_tree)
    manifest_path = fresh_tree / "ultralytics" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["bbpatch"] = "0.0.1"
    manifest_path.write_text(json.dumps(manifest))
    assert api.apply(fresh_tree).state == "updated"
    assert json.loads(manifest_path.read_text())["bbpatch"] != "0.0.1"


def test_dry_run_prints_diff_and_writes_nothing(fresh_tree):
    before = tree_bytes(fresh_tree)
    report = api.apply(fresh_tree, dry_run=True)
    assert "+from ultralytics.nn.Addmodules import *" in report.diff
    assert "b/ultralytics/nn/Addmodules/_runtime.py" in report.diff
    assert tree_bytes(fresh_tree) == before


def test_lock_held_by_a_live_process_refuses(fresh_tree):
    lock = fresh_tree / "ultralytics" / LOCK
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = tree_bytes(fresh_tree)
        with pytest.raises(transaction.LockedError, match=f"another bbpatch run \\(pid {holder.pid}\\)"):
            api.apply(fresh_tree)
        assert tree_bytes(fresh_tree) == before
    finally:
        holder.kill()
        holder.wait()
    api.apply(fresh_tree)  # the dead process's lock is taken over
    assert not lock.exists()


HOLD_LOCK = """
import sys
from pathlib import Path
from bbpatch.disk.transaction import locked
with locked(Path(sys.argv[1])):
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_not_an_ultralytics_tree(tmp_path):
    with pytest.raises(TreeError, match="no ultralytics package here"):
        api.apply(tmp_path)


def test_syntax_error_in_tasks_is_a_clear_error(fresh_tree):
    tasks = fresh_tree / TASKS
    tasks.write_text(tasks.read_text() + "\ndef broken(:\n")
    before = tree_bytes(fresh_tree)
    with pytest.raises(TreeError, match=r"tasks.py: not valid Python"):
        api.apply(fresh_tree)
    assert tree_bytes(fresh_tree) == before


@pytest.mark.parametrize("command", ["apply", "status", "revert"])
def test_commands_never_import_torch_timm_or_ultralytics(fresh_tree, command):
    code = (
        "import sys; from bbpatch.cli import main\n"
        f"try:\n    main(['{command}', r'{fresh_tree}'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'ultralytics'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
