"""Trust nothing on disk: a manifest never steers bbpatch outside the package, a symlink never carries a write
out of it, and a manifest bbpatch did not write is refused (exit 2, one line, nothing changed anywhere)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from bbpatch.disk.manifest import Manifest, ManifestError

from helpers import run_cli, tree_bytes

TASKS = "ultralytics/nn/tasks.py"
MANIFEST = "ultralytics/nn/Addmodules/bbpatch_manifest.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _everything(root) -> dict[str, bytes]:
    """Every file under the test's tmp dir: the tree and what lies beside it."""
    return tree_bytes(root)


def _add_record(tree, key: str, record: dict) -> None:
    path = tree / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"][key] = record
    path.write_text(json.dumps(manifest))


def _refused(result, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    for word in words:
        assert word in error, error


@pytest.fixture
def applied(fresh_tree):
    assert run_cli("apply", str(fresh_tree)).returncode == 0
    return fresh_tree


@pytest.fixture
def victim(applied):
    """A file beside the tree (outside the package) that a hostile manifest aims at."""
    path = applied.parent / "victim.txt"
    path.write_bytes(b"not yours\n")
    return path


def _created(data: bytes) -> dict:
    return {"action": "created", "patched_sha256": _sha(data)}


def _changed(original: bytes, patched: bytes) -> dict:
    return {
        "action": "changed",
        "patched_sha256": _sha(patched),
        "original_sha256": _sha(original),
        "original_b64": base64.b64encode(original).decode(),
    }


HOSTILE_KEYS = {
    "dot-dot": lambda victim: "../../victim.txt",
    "dot-dot inside": lambda victim: "nn/Addmodules/../../../victim.txt",
    "absolute": lambda victim: str(victim),
    "absolute, missing": lambda victim: str(victim.with_name("new-file.txt")),
    "backslashes": lambda victim: "..\\..\\victim.txt",
}


@pytest.mark.parametrize("action", ["created", "changed"])
@pytest.mark.parametrize("variant", sorted(HOSTILE_KEYS))
def test_a_manifest_naming_a_path_outside_the_package_is_refused(applied, victim, variant, action):
    key = HOSTILE_KEYS[variant](victim)
    tasks = (applied / TASKS).read_bytes()
    record = _created(victim.read_bytes()) if action == "created" else _changed(tasks, victim.read_bytes())
    _add_record(applied, key, record)
    before = _everything(applied.parent)
    for command in ("revert", "status", "apply"):
        _refused(run_cli(command, str(applied)), "bbpatch_manifest.json", "not a relative, normalised path")
        assert _everything(applied.parent) == before
    assert not victim.with_name("new-file.txt").exists()


@pytest.mark.parametrize(
    "key, action",
    [
        ("nn/modules/conv.py", "changed"),  # a file bbpatch never patches
        ("utils/checks.py", "created"),  # a folder bbpatch never creates files in
        ("__init__.py", "created"),
    ],
)
def test_a_manifest_naming_a_file_bbpatch_never_writes_is_refused(applied, key, action):
    target = applied / "ultralytics" / key
    data = target.read_bytes()
    record = _created(data) if action == "created" else _changed(b"# replaced\n", data)
    _add_record(applied, key, record)
    before = tree_bytes(applied)
    _refused(run_cli("revert", str(applied)), "bbpatch_manifest.json", key, "restore it")
    assert tree_bytes(applied) == before


BAD_MANIFESTS = {
    "not JSON": lambda m: "{not json",
    "a list": lambda m: "[]",
    "no files": lambda m: json.dumps({k: v for k, v in m.items() if k != "files"}),
    "unknown action": lambda m: _with_record(m, "nn/Addmodules/_runtime.py", action="moved"),
    "short hash": lambda m: _with_record(m, "nn/Addmodules/_runtime.py", patched_sha256="abc123"),
    "upper-case hash": lambda m: _with_record(
        m, "nn/Addmodules/_runtime.py", patched_sha256=m["files"]["nn/Addmodules/_runtime.py"]["patched_sha256"].upper()
    ),
    "unknown field": lambda m: _with_record(m, "nn/Addmodules/_runtime.py", mode="0777"),
    "original of a created file": lambda m: _with_record(m, "nn/Addmodules/_runtime.py", original_b64="eA=="),
    "original not base64": lambda m: _with_record(m, "nn/tasks.py", original_b64="***"),
    "original not matching its hash": lambda m: _with_record(
        m, "nn/tasks.py", original_b64=base64.b64encode(b"import os\n").decode()
    ),
    "version not a string": lambda m: json.dumps({**m, "bbpatch": 2}),
}


def _with_record(manifest: dict, key: str, **fields) -> str:
    manifest["files"][key] = {**manifest["files"][key], **fields}
    return json.dumps(manifest)


@pytest.mark.parametrize("variant", sorted(BAD_MANIFESTS))
def test_a_malformed_manifest_is_refused_with_exit_2_and_no_change(applied, variant):
    path = applied / MANIFEST
    path.write_text(BAD_MANIFESTS[variant](json.loads(path.read_text())))
    before = tree_bytes(applied)
    for command in ("revert", "status", "apply"):
        _refused(run_cli(command, str(applied)), "bbpatch_manifest.json: unreadable bbpatch manifest")
        assert tree_bytes(applied) == before


def test_the_manifest_bbpatch_writes_passes_its_own_validation(patched_tree):
    manifest = Manifest.from_bytes((patched_tree / MANIFEST).read_bytes())
    assert manifest.files["nn/tasks.py"].original.startswith(b"# Ultralytics")
    with pytest.raises(ManifestError, match="original bytes do not match"):
        raw = json.loads((patched_tree / MANIFEST).read_text())
        Manifest.from_bytes(_with_record(raw, "nn/tasks.py", original_b64=base64.b64encode(b"x").decode()).encode())


def test_addmodules_as_a_symlink_out_of_the_package_is_refused(fresh_tree):
    elsewhere = fresh_tree.parent / "elsewhere"
    elsewhere.mkdir()
    (fresh_tree / "ultralytics/nn/Addmodules").symlink_to(elsewhere, target_is_directory=True)
    before = _everything(fresh_tree.parent)
    result = run_cli("apply", str(fresh_tree))
    _refused(result, "nn/Addmodules: a symlink out of the package", str(elsewhere))
    assert _everything(fresh_tree.parent) == before
    assert list(elsewhere.iterdir()) == []
    assert not list(fresh_tree.rglob(".bbpatch*"))


def test_a_symlinked_folder_inside_the_package_is_fine(fresh_tree):
    """A link that stays in the package is not a way out: apply and revert work through it."""
    real = fresh_tree / "ultralytics/nn/addmodules_real"
    real.mkdir()
    (fresh_tree / "ultralytics/nn/Addmodules").symlink_to(real, target_is_directory=True)
    before = tree_bytes(fresh_tree)
    assert run_cli("apply", str(fresh_tree)).returncode == 0
    assert (real / "bbpatch_manifest.json").is_file()
    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == before


def test_revert_refuses_a_folder_that_became_a_symlink_out_of_the_package(applied):
    """After apply, someone replaces nn/Addmodules/yamls with a link to a copy elsewhere: revert must not delete
    the copy's files (their hashes match the manifest)."""
    yamls = applied / "ultralytics/nn/Addmodules/yamls"
    copy = applied.parent / "yamls-copy"
    yamls.rename(copy)
    yamls.symlink_to(copy, target_is_directory=True)
    before = _everything(applied.parent)
    _refused(run_cli("revert", str(applied)), "nn/Addmodules/yamls: a symlink out of the package")
    assert _everything(applied.parent) == before


def test_a_symlinked_tasks_py_is_reported_and_its_target_never_written(fresh_tree):
    tasks = fresh_tree / TASKS
    outside = fresh_tree.parent / "shared_tasks.py"
    outside.write_bytes(tasks.read_bytes())
    tasks.unlink()
    tasks.symlink_to(outside)
    original = outside.read_bytes()

    status = run_cli("status", str(fresh_tree))
    assert f"is a symlink to {outside}, outside the package" in status.stdout
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 0, result.stderr
    assert f"is a symlink to {outside}, outside the package" in result.stdout
    assert outside.read_bytes() == original
    assert not tasks.is_symlink() and b"Addmodules" in tasks.read_bytes()

    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tasks.read_bytes() == original and outside.read_bytes() == original
