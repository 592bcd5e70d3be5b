"""The command line as a user runs it: exit codes, the chosen tree, JSON, defaults."""

from __future__ import annotations

import json

from helpers import run_cli, tree_bytes


def test_apply_status_revert_round_trip(fresh_tree):
    before = tree_bytes(fresh_tree)
    result = run_cli("status", str(fresh_tree))
    assert result.returncode == 3 and "clean" in result.stdout
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"tree: {fresh_tree / 'ultralytics'} (ultralytics ")
    assert "edits applied" in result.stdout
    again = run_cli("apply", str(fresh_tree))
    assert again.returncode == 0 and "already patched" in again.stdout
    status = run_cli("status", "--json", str(fresh_tree))
    assert status.returncode == 0
    data = json.loads(status.stdout)
    assert data["state"] == "patched" and data["edits"]["backbone_branch"] == "applied"
    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == before


def test_default_path_is_dot_ultralytics(fresh_tree):
    result = run_cli("status", cwd=fresh_tree)
    assert result.returncode == 3
    assert f"tree: {fresh_tree / 'ultralytics'}" in result.stdout


def test_package_dir_itself_is_accepted(fresh_tree):
    result = run_cli("status", str(fresh_tree / "ultralytics"))
    assert result.returncode == 3


def test_drifted_exit_code(fresh_tree):
    run_cli("apply", str(fresh_tree))
    (fresh_tree / "ultralytics/nn/Addmodules/_runtime.py").unlink()
    result = run_cli("status", str(fresh_tree))
    assert result.returncode == 1
    assert "nn/Addmodules/_runtime.py: missing" in result.stdout


def test_bad_path_is_one_line_error_exit_2(tmp_path):
    result = run_cli("apply", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert str(tmp_path) in result.stderr and "no ultralytics package here" in result.stderr


def test_unsupported_layout_names_file_and_function(fresh_tree):
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    tasks.write_text(tasks.read_text().replace("        else:\n            c2 = ch[f]\n", ""))
    before = tree_bytes(fresh_tree)
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 2
    assert (
        "nn/tasks.py: parse_model has no final 'else: c2 = ch[f]' branch in a parse_model(d, ...); "
        "this layout is not supported" in result.stderr
    )
    assert tree_bytes(fresh_tree) == before


def test_hand_patched_exit_code(fresh_tree):
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    tasks.write_text("from ultralytics.nn.Addmodules import *\n" + tasks.read_text())
    assert run_cli("status", str(fresh_tree)).returncode == 4
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 4 and "by hand" in result.stderr


def test_python_dash_m_and_version():
    result = run_cli("--version")
    assert result.returncode == 0 and "bbpatch" in result.stdout
