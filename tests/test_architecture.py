"""The rooms' one-way rule (bbpatch.architecture), on this checkout and on copies of it broken on purpose."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bbpatch import architecture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkout(tmp_path) -> Path:
    for folder in architecture.SOURCES:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_this_checkout_keeps_the_rule_and_make_lint_runs_the_check():
    assert architecture.check(ROOT) == []
    assert "bbpatch.architecture" in (ROOT / "Makefile").read_text(encoding="utf-8").split("lint:")[1]


def test_every_subpackage_is_a_room_that_says_what_it_owns():
    rooms = {room.name for room in architecture.ROOMS}
    for init in sorted((ROOT / "patcher").glob("*/__init__.py")):
        assert init.parent.name in rooms, f"{init.parent}: a folder that is not a room"
        docstring = init.read_text(encoding="utf-8").lstrip()
        assert docstring.startswith('"""') and len(docstring.split('"""')[1]) > 40, f"{init}: say what the room owns"


def test_a_lower_room_importing_a_higher_one_fails_naming_both(checkout):
    append(checkout / "patcher/engine/tree.py", "\n\ndef late():\n    from bbpatch import api\n\n    return api\n")
    problems = architecture.check(checkout)
    assert "bbpatch.engine.tree imports bbpatch.api: room 'engine' may not import room 'api'" in problems
    assert any(p.startswith("import circle: ") and "bbpatch.engine.tree" in p for p in problems)


def test_modules_never_import_the_tool(checkout):
    append(checkout / "modules/_runtime.py", "\nfrom bbpatch.models import catalog  # noqa\n")
    problems = architecture.check(checkout)
    assert problems == [
        "bbpatch.modules._runtime imports bbpatch.models.catalog: room 'modules' may not import room 'models'"
    ]


def test_a_circle_inside_one_room_fails(checkout):
    # what verify/checks.py and verify/exports.py did before the registry had a module of its own
    append(checkout / "patcher/verify/checks.py", "\nfrom . import exports  # noqa\n")
    problems = architecture.check(checkout)
    assert problems == ["import circle: bbpatch.verify.checks -> bbpatch.verify.exports -> bbpatch.verify.checks"]


def test_a_module_outside_every_room_fails_and_the_command_exits_1(checkout):
    (checkout / "patcher/helpers.py").write_text("from bbpatch.engine import tree  # noqa\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "bbpatch.architecture", str(checkout)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("bbpatch.helpers: in no room"), proc.stdout
    clean = subprocess.run([sys.executable, "-m", "bbpatch.architecture", str(ROOT)], capture_output=True, text=True)
    assert clean.returncode == 0 and "no circles" in clean.stdout


def test_the_map_in_docs_is_the_one_the_check_enforces():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert architecture.diagram() in doc, "run `python -m bbpatch.architecture --diagram` and paste it into the doc"


def test_every_0_3_import_path_is_the_moved_module_itself_with_a_deprecation_warning():
    code = (
        "import importlib, json, sys, warnings\n"
        "from bbpatch import _moved\n"
        "out = {}\n"
        "for old, new in _moved.MOVED.items():\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module('bbpatch.' + old)\n"
        "    out[old] = [module is importlib.import_module('bbpatch.' + new), [str(w.message) for w in caught]]\n"
        "from bbpatch.edits.base import Edit\n"
        "from bbpatch.engine.edits.base import Edit as moved\n"
        "out['edits.base'] = [Edit is moved, []]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import json

    from bbpatch import _moved

    found = json.loads(proc.stdout)
    assert set(found) == {*_moved.MOVED, "edits.base"}
    for old, (same, warned) in found.items():
        assert same, f"bbpatch.{old} is a copy, not the moved module"
        if old in _moved.MOVED:
            assert warned == [
                f"bbpatch.{old} moved to bbpatch.{_moved.MOVED[old]} in bbpatch 0.4; the old name goes in 0.5"
            ]


def test_python_m_on_an_old_name_runs_the_new_module():
    proc = subprocess.run([sys.executable, "-m", "bbpatch.sweep", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m bbpatch.releases.sweep"), proc.stderr


def test_a_name_that_never_existed_still_fails_to_import():
    proc = subprocess.run([sys.executable, "-c", "import bbpatch.nothing_here"], capture_output=True, text=True)
    assert proc.returncode == 1 and "No module named 'bbpatch.nothing_here'" in proc.stderr
