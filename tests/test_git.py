"""A patched fork takes upstream releases through real git: the merge driver, ``bbpatch resolve``, pulls with the
patch uncommitted, vendored subfolders and submodules. Real ``git``, real commits and merges, real release wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bbpatch import api
from bbpatch.engine.tree import MANIFEST
from bbpatch.git.merge import merge_patched

from conftest import IGNORE, RELEASE_CACHE, release_package
from helpers import run_cli, tree_bytes

TASKS, TORCH_UTILS = "nn/tasks.py", "utils/torch_utils.py"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "fork",
    "GIT_AUTHOR_EMAIL": "fork@example.com",
    "GIT_COMMITTER_NAME": "fork",
    "GIT_COMMITTER_EMAIL": "fork@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,  # the developer's own git config must not change what the tests see
    "GIT_CONFIG_NOSYSTEM": "1",
}
PAIRS = [("8.2.103", "8.3.253"), ("8.3.253", "8.4.100"), ("8.4.100", "8.4.190")]


def append_helper(text: str) -> str:
    return text + "\n\ndef my_helper():\n    return 42\n"


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    assert not check or result.returncode == 0, f"git {args}: {result.stdout}{result.stderr}"
    return result


def bbpatch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env=GIT_ENV)


def put_release(version: str, package: Path) -> None:
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(release_package(version), package, ignore=IGNORE)


def edit_tasks(package: Path, edit) -> None:
    tasks = package / TASKS
    tasks.write_text(edit(tasks.read_text("utf-8")), "utf-8")


def make_fork(root: Path, old: str, new: str, edit=append_helper, folder: str = "ultralytics") -> Path:
    """A repository at release ``old``, patched and edited by the user on main; branch upstream moves to ``new``."""
    repo = root / "fork"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    put_release(old, repo / folder)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"ultralytics {old}")
    git(repo, "branch", "upstream")
    api.apply(repo / folder)
    edit_tasks(repo / folder, edit)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bbpatch apply, and my own helper")
    git(repo, "checkout", "-q", "upstream")
    put_release(new, repo / folder)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"ultralytics {new}")
    git(repo, "checkout", "-q", "main")
    return repo


def release_with_edit(root: Path, version: str, edit, patched: bool) -> dict[str, bytes]:
    """The package a user would get from a fresh copy of ``version``, their edit, and (if patched) bbpatch apply."""
    package = root / "ultralytics"
    put_release(version, package)
    edit_tasks(package, edit)
    if patched:
        api.apply(package)
    return tree_bytes(package)


def without_manifest(files: dict[str, bytes]) -> dict[str, bytes]:
    return {key: data for key, data in files.items() if not key.endswith(MANIFEST)}


def conflict_blocks(text: str) -> list[tuple[str, str]]:
    """(ours, theirs) of every conflict in a file merged in git's default style."""
    blocks, ours, theirs, side = [], [], [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("<<<<<<<"):
            ours, theirs = [], []
            side = ours
        elif line.startswith("=======") and side is not None:
            side = theirs
        elif line.startswith(">>>>>>>") and side is not None:
            blocks.append(("".join(ours), "".join(theirs)))
            side = None
        elif side is not None:
            side.append(line)
    return blocks


def assert_fully_patched_at(repo: Path, folder: str, version: str) -> None:
    package = repo / folder
    for key in (TASKS, TORCH_UTILS):
        assert "<<<<<<<" not in (package / key).read_text("utf-8")
    result = bbpatch("status", "--json", str(package), cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "patched" and data["ultralytics"] == version
    assert set(data["edits"].values()) <= {"applied", "n/a"}


def revert_copy(package: Path, root: Path) -> dict[str, bytes]:
    """Revert a copy of ``package`` (the repository stays as merged) and return the copy's files."""
    copy = root / "ultralytics"
    shutil.copytree(package, copy, ignore=IGNORE)
    result = bbpatch("revert", str(copy), cwd=root)
    assert result.returncode == 0, result.stderr
    return tree_bytes(copy)


# --- merging an upstream release -------------------------------------------------------------------------------------


@pytest.mark.parametrize("old,new", PAIRS)
def test_merge_driver_and_hook_give_a_fresh_apply_of_the_new_release(old, new, tmp_path):
    repo = make_fork(tmp_path, old, new)
    setup = bbpatch("git-setup", cwd=repo)
    assert setup.returncode == 0 and "merge.bbpatch.driver" in setup.stdout, setup.stderr
    assert "hooks/post-merge: installed" in setup.stdout
    merge = git(repo, "merge", "--no-edit", "upstream", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert f"refreshed the patch record and YAMLs for ultralytics {new}" in merge.stderr
    # the merge commit holds upstream + the user's lines, patched; the hook's refresh waits to be committed
    changed = git(repo, "status", "--porcelain").stdout.splitlines()
    assert changed and all(line[3:].startswith("ultralytics/nn/Addmodules/") for line in changed)
    assert_fully_patched_at(repo, "ultralytics", new)
    package = repo / "ultralytics"
    assert tree_bytes(package) == release_with_edit(tmp_path / "expected", new, append_helper, patched=True)
    git(repo, "add", "ultralytics/nn/Addmodules")
    git(repo, "commit", "-qm", "bbpatch: refresh")
    assert bbpatch("revert", str(repo), cwd=repo).returncode == 0
    assert tree_bytes(package) == release_with_edit(tmp_path / "stock", new, append_helper, patched=False)


def test_without_the_hook_status_and_revert_work_from_the_merged_tree(tmp_path):
    old, new = "8.3.253", "8.4.100"
    repo = make_fork(tmp_path, old, new)
    assert bbpatch("git-setup", "--no-hook", cwd=repo).returncode == 0
    assert git(repo, "merge", "--no-edit", "upstream", check=False).returncode == 0
    assert git(repo, "status", "--porcelain").stdout == ""
    assert_fully_patched_at(repo, "ultralytics", new)  # the manifest still records 8.3.253
    package = repo / "ultralytics"
    expected = release_with_edit(tmp_path / "expected", new, append_helper, patched=True)
    merged = without_manifest(tree_bytes(package))
    assert merged == {key: expected.get(key) for key in merged}
    # what a merge cannot bring: YAMLs that only the new release can build (bbpatch apply installs them)
    missing = set(without_manifest(expected)) - set(merged)
    assert missing and all(key.startswith("nn/Addmodules/yamls/yolo26") for key in missing)
    stock = release_with_edit(tmp_path / "stock", new, append_helper, patched=False)
    assert revert_copy(package, tmp_path / "reverted") == stock
    refresh = bbpatch("apply", str(repo), cwd=repo)
    assert refresh.returncode == 0 and "updated" in refresh.stdout, refresh.stdout + refresh.stderr
    assert tree_bytes(package) == expected


@pytest.mark.parametrize("old,new", PAIRS)
def test_resolve_settles_a_merge_that_conflicted(old, new, tmp_path):
    repo = make_fork(tmp_path, old, new)
    merge = git(repo, "merge", "--no-edit", "upstream", check=False)
    assert merge.returncode != 0 and "CONFLICT (content): Merge conflict in ultralytics/nn/tasks.py" in merge.stdout
    result = bbpatch("resolve", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "merged and staged: ultralytics/nn/tasks.py" in result.stdout
    assert "refreshed for ultralytics" in result.stdout
    git(repo, "commit", "-q", "--no-edit")
    assert git(repo, "status", "--porcelain").stdout == ""
    assert_fully_patched_at(repo, "ultralytics", new)
    package = repo / "ultralytics"
    assert tree_bytes(package) == release_with_edit(tmp_path / "expected", new, append_helper, patched=True)
    assert bbpatch("revert", str(repo), cwd=repo).returncode == 0
    assert tree_bytes(package) == release_with_edit(tmp_path / "stock", new, append_helper, patched=False)


def mine_on_torch_nn(text: str) -> str:
    """A user edit on a line that upstream rewrote between 8.4.100 and 8.4.190 (import torch.nn as nn)."""
    assert "import torch.nn as nn\n" in text
    return text.replace("import torch.nn as nn\n", "import torch.nn as nn  # mine\n", 1)


@pytest.mark.parametrize("how", ["driver", "resolve"])
def test_a_true_conflict_has_markers_around_the_users_lines_only(how, tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190", mine_on_torch_nn)
    if how == "driver":
        assert bbpatch("git-setup", cwd=repo).returncode == 0
    merge = git(repo, "merge", "--no-edit", "upstream", check=False)
    assert merge.returncode != 0 and "Merge conflict in ultralytics/nn/tasks.py" in merge.stdout
    if how == "resolve":
        result = bbpatch("resolve", cwd=repo)
        assert result.returncode == 1
        assert "still conflicted: ultralytics/nn/tasks.py: 1 conflict(s) in your own lines" in result.stdout
        assert "merged and staged: ultralytics/utils/torch_utils.py" in result.stdout
    tasks = repo / "ultralytics" / TASKS
    text = tasks.read_text("utf-8")
    assert conflict_blocks(text) == [("import torch.nn as nn  # mine\n", "from torch import nn\n")]
    # the user keeps their line: the file is then exactly a fresh apply on the new release plus their edit
    tasks.write_text(text.replace("<<<<<<< ours\n", "").replace("=======\nfrom torch import nn\n>>>>>>> theirs\n", ""))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-edit")
    assert_fully_patched_at(repo, "ultralytics", "8.4.190")

    def kept_mine(text):
        return text.replace("from torch import nn\n", "import torch.nn as nn  # mine\n", 1)

    expected = release_with_edit(tmp_path / "expected", "8.4.190", kept_mine, patched=True)
    assert without_manifest(tree_bytes(repo / "ultralytics")) == without_manifest(expected)


# --- the other upgrade paths -----------------------------------------------------------------------------------------


def make_clone_with_uncommitted_patch(root: Path, old: str, new: str) -> Path:
    """origin holds ``old`` then ``new``; the clone is at ``old`` with the patch and the user's edit uncommitted."""
    origin = root / "origin"
    origin.mkdir(parents=True)
    git(origin, "init", "-q", "-b", "main")
    put_release(old, origin / "ultralytics")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", old)
    git(root, "clone", "-q", str(origin), "clone")
    put_release(new, origin / "ultralytics")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", new)
    clone = root / "clone"
    api.apply(clone / "ultralytics")
    edit_tasks(clone / "ultralytics", append_helper)
    return clone


@pytest.mark.parametrize("recipe", ["driver", "revert-first"])
def test_pull_with_the_patch_uncommitted(recipe, tmp_path):
    clone = make_clone_with_uncommitted_patch(tmp_path, "8.4.100", "8.4.190")
    assert "would be overwritten" in git(clone, "pull", "-q", check=False).stderr  # what users hit without a recipe
    if recipe == "driver":
        assert bbpatch("git-setup", cwd=clone).returncode == 0
    else:
        assert bbpatch("revert", cwd=clone).returncode == 0
    git(clone, "pull", "-q", "--autostash")
    assert bbpatch("apply", cwd=clone).returncode == 0
    expected = release_with_edit(tmp_path / "expected", "8.4.190", append_helper, patched=True)
    assert tree_bytes(clone / "ultralytics") == expected
    assert bbpatch("revert", cwd=clone).returncode == 0
    assert tree_bytes(clone / "ultralytics") == release_with_edit(tmp_path / "stock", "8.4.190", append_helper, False)


def test_vendored_subfolder_merges_with_the_driver_set_up_from_inside(tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190", folder="third_party/yolo/ultralytics")
    inside = repo / "third_party" / "yolo" / "ultralytics" / "nn"
    setup = bbpatch("git-setup", cwd=inside)  # any directory of the work tree; the package is found by git
    assert setup.returncode == 0 and "/third_party/yolo/ultralytics/nn/tasks.py merge=bbpatch" in setup.stdout
    assert git(repo, "merge", "--no-edit", "upstream", check=False).returncode == 0
    assert_fully_patched_at(repo, "third_party/yolo/ultralytics", "8.4.190")


def test_submodule_fork_merges_with_the_driver(tmp_path):
    fork = make_fork(tmp_path / "sub", "8.4.100", "8.4.190")
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    git(project, "submodule", "add", "-q", str(fork), "vendor/yolo")
    git(project, "commit", "-qm", "vendor the fork")
    submodule = project / "vendor" / "yolo"
    git(submodule, "fetch", "-q", "origin", "upstream:upstream")
    assert bbpatch("git-setup", "ultralytics", cwd=submodule).returncode == 0
    assert (Path(git(submodule, "rev-parse", "--absolute-git-dir").stdout.strip()) / "info" / "attributes").is_file()
    assert git(submodule, "merge", "--no-edit", "upstream", check=False).returncode == 0
    assert_fully_patched_at(submodule, "ultralytics", "8.4.190")


def wheel(version: str) -> Path:
    release_package(version)
    return next((RELEASE_CACHE / "wheels").glob(f"ultralytics-{version}-*.whl"))


def test_pip_upgrade_over_a_patched_site_packages(tmp_path):
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile"]
    subprocess.run([*pip, str(wheel("8.4.100"))], check=True)
    package = next(env.glob("lib/python*/site-packages/ultralytics"))
    assert bbpatch("apply", str(package), cwd=tmp_path).returncode == 0
    subprocess.run([*pip, "--upgrade", str(wheel("8.4.190"))], check=True)
    stale = bbpatch("status", str(package), cwd=tmp_path)
    assert stale.returncode == 1 and "ultralytics changed from 8.4.100 to 8.4.190" in stale.stdout
    again = bbpatch("apply", str(package), cwd=tmp_path)
    assert again.returncode == 0 and "updated" in again.stdout, again.stderr
    assert bbpatch("status", str(package), cwd=tmp_path).returncode == 0
    assert bbpatch("revert", str(package), cwd=tmp_path).returncode == 0
    assert tree_bytes(package) == tree_bytes(release_package("8.4.190"))


# --- git-setup, and bad input ----------------------------------------------------------------------------------------


def test_git_setup_is_idempotent_and_undo_removes_exactly_what_it_added(tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190")
    attributes = repo / ".git" / "info" / "attributes"
    attributes.write_text("*.png binary\n")
    config_before = (repo / ".git" / "config").read_bytes()
    assert bbpatch("git-setup", cwd=repo).returncode == 0
    assert "/ultralytics/nn/tasks.py merge=bbpatch" in attributes.read_text()
    again = bbpatch("git-setup", cwd=repo)
    assert again.returncode == 0 and "already set up: nothing changed" in again.stdout
    assert bbpatch("git-setup", "--shared", cwd=repo).returncode == 0
    assert "/ultralytics/utils/torch_utils.py merge=bbpatch" in (repo / ".gitattributes").read_text()
    assert (repo / ".git" / "hooks" / "post-merge").stat().st_mode & 0o111
    assert bbpatch("git-setup", "--undo", "--shared", cwd=repo).returncode == 0
    assert bbpatch("git-setup", "--undo", cwd=repo).returncode == 0
    assert attributes.read_text() == "*.png binary\n"
    assert not (repo / ".gitattributes").exists() and not (repo / ".git" / "hooks" / "post-merge").exists()
    assert (repo / ".git" / "config").read_bytes() == config_before


def test_git_setup_leaves_a_post_merge_hook_of_the_users_alone(tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190")
    hook = repo / ".git" / "hooks" / "post-merge"
    hook.write_text("#!/bin/sh\necho mine\n")
    setup = bbpatch("git-setup", cwd=repo)
    assert setup.returncode == 0 and "yours, left alone; add this line to it" in setup.stdout
    assert bbpatch("git-setup", "--undo", cwd=repo).returncode == 0
    assert hook.read_text() == "#!/bin/sh\necho mine\n"


def test_git_commands_outside_a_repository_change_nothing(tmp_path, pristine_tree):
    for command in (("git-setup", str(pristine_tree)), ("resolve", str(pristine_tree))):
        result = bbpatch(*command, cwd=tmp_path)
        assert result.returncode == 2 and "not inside a git work tree" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_resolve_without_a_merge_in_progress(tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190")
    result = bbpatch("resolve", cwd=repo)
    assert result.returncode == 2 and "no merge in progress" in result.stderr


def test_resolve_leaves_files_it_does_not_manage_to_the_user(tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190")
    for branch, text in (("upstream", "theirs\n"), ("main", "mine\n")):
        git(repo, "checkout", "-q", branch)
        (repo / "NOTES.md").write_text(text)
        git(repo, "add", "NOTES.md")
        git(repo, "commit", "-qm", f"notes on {branch}")
    git(repo, "merge", "--no-edit", "upstream", check=False)
    result = bbpatch("resolve", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not bbpatch's: NOTES.md" in result.stdout and "merged and staged: ultralytics/nn/tasks.py" in result.stdout
    assert "<<<<<<<" in (repo / "NOTES.md").read_text()
    assert "NOTES.md" in git(repo, "diff", "--name-only", "--diff-filter=U").stdout


def test_driver_on_a_file_that_is_not_python_keeps_ours_untouched(tmp_path):
    sides = {name: tmp_path / name for name in ("base", "ours", "theirs")}
    for name, path in sides.items():
        path.write_text(f"this is not python ({name}\n")
    result = bbpatch("merge-file", *(str(p) for p in sides.values()), "--path", "ultralytics/nn/tasks.py", cwd=tmp_path)
    assert result.returncode == 2 and "not valid Python" in result.stderr and "Traceback" not in result.stderr
    assert sides["ours"].read_text() == "this is not python (ours\n"


# --- the merge itself (bbpatch.git.merge), on the real 8.4.100 -> 8.4.190 files --------------------------------------


def merge_sides(edit=append_helper) -> tuple[bytes, bytes, bytes]:
    base = (release_package("8.4.100") / TASKS).read_bytes()
    tree = api.find_tree(release_package("8.4.100"))
    ours = edit(api.patch_source(tree, TASKS, base)[0].decode("utf-8")).encode("utf-8")
    return base, ours, (release_package("8.4.190") / TASKS).read_bytes()


def test_conflict_style_diff3_is_honoured():
    merged = merge_patched("ultralytics/" + TASKS, *merge_sides(mine_on_torch_nn), style="diff3")
    assert merged.conflicts == 1 and merged.patched
    text = merged.data.decode("utf-8")
    start = text.index("<<<<<<< ours\n")
    assert text[start:].startswith(
        "<<<<<<< ours\nimport torch.nn as nn  # mine\n||||||| base\nimport torch.nn as nn\n"
        "=======\nfrom torch import nn\n>>>>>>> theirs\n"
    )


def test_an_edit_that_cannot_land_leaves_the_unpatched_merge_and_names_it(tmp_path):
    base, ours, theirs = merge_sides()
    theirs = theirs.replace(b"def parse_model(", b"def build_layers(")  # an upstream layout change
    merged = merge_patched("ultralytics/" + TASKS, base, ours, theirs)
    assert not merged.patched and "parse_model" in merged.problem and "not supported" in merged.problem
    assert (
        merged.data
        == merge_patched("ultralytics/" + TASKS, base, base, theirs).data + b"\n\ndef my_helper():\n    return 42\n"
    )
    sides = [tmp_path / name for name in ("base", "ours", "theirs")]
    for path, data in zip(sides, (base, ours, theirs)):
        path.write_bytes(data)
    result = bbpatch("merge-file", *map(str, sides), "--path", "ultralytics/" + TASKS, cwd=tmp_path)
    assert result.returncode == 1 and "merged without bbpatch's edits" in result.stderr
    assert sides[1].read_bytes() == merged.data


def test_git_commands_never_import_torch_timm_or_ultralytics(tmp_path):
    repo = make_fork(tmp_path, "8.4.100", "8.4.190")
    git(repo, "merge", "--no-edit", "upstream", check=False)  # conflicted: resolve has work to do
    sides = [tmp_path / name for name in ("base", "ours", "theirs")]
    for path, data in zip(sides, merge_sides()):
        path.write_bytes(data)
    calls = [
        ["resolve", str(repo)],
        ["git-setup", str(repo)],
        ["merge-file", *map(str, sides), "--path", "ultralytics/nn/tasks.py"],
    ]
    code = (
        "import sys; from bbpatch.cli import main\n"
        f"for args in {calls!r}:\n"
        "    try:\n        main(args)\n"
        "    except SystemExit as done:\n        assert done.code == 0, (args, done.code)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'ultralytics'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, env={**os.environ, **GIT_ENV}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "def my_helper" in sides[1].read_text() and "bbpatch_save_backbone_outputs" in sides[1].read_text()
