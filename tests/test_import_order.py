"""Import-safe order for any change set, not just apply's and revert's: a small package laid out like
ultralytics with Addmodules (a package whose ``__init__`` imports every module beside it, a ``tasks`` module that
imports it and a ``utils`` module), changed in the ways bbpatch and later commands change trees: installing a
package, removing it, refreshing it to a newer version whose modules come and go, a module file that is
not Python. Each change set is committed by ``transaction.commit`` in a real process SIGKILLed after every one of
its writes; after each kill a new Python imports ``pkg.tasks`` from the tree as the kill left it, and
``recover_pending`` rolls the tree back to its exact bytes."""

from __future__ import annotations

import ast
import base64
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bbpatch.disk.import_order import import_safe_order, import_statements
from bbpatch.disk.journal import JOURNAL
from bbpatch.disk.transaction import recover_pending

from conftest import installed_package
from helpers import Preloaded, tree_bytes

ADD_INIT = """\
import importlib, pkgutil
from ._rt import *
for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{info.name}")
"""
STOCK = {
    "pkg/__init__.py": "",
    "pkg/utils.py": "def helper():\n    return 1\n",
    "pkg/tasks.py": "from pkg.utils import helper\nVALUE = helper()\n",
}
PATCHED = {
    "pkg/utils.py": "def helper():\n    return 1\n\n\ndef helper2():\n    return 2\n",
    "pkg/tasks.py": "from pkg.utils import helper, helper2\nfrom pkg.add import *\nVALUE = helper2() + role()\n",
    "pkg/add/__init__.py": ADD_INIT,
    "pkg/add/_rt.py": "def role():\n    return 1\n\n\ndef gone():\n    return 0\n",
    "pkg/add/_catalog.py": "ROWS = [1, 2]\n",
    "pkg/add/blocks.py": "from ._rt import role\nfrom ._catalog import ROWS\nBLOCK = role() + len(ROWS)\n",
    "pkg/add/old.py": "from ._rt import gone\nOLD = gone()\n",
    "pkg/add/yamls/model.yaml": "backbone: []\n",
}
# a newer version of the package: _rt loses 'gone' (so old.py must go first) and gains 'role2', which a new
# module and the new tasks.py use; old.py is gone, new.py arrives
REFRESHED = {
    **PATCHED,
    "pkg/tasks.py": "from pkg.utils import helper, helper2\nfrom pkg.add import *\nVALUE = helper() + role2()\n",
    "pkg/add/_rt.py": "def role():\n    return 1\n\n\ndef role2():\n    return 2\n",
    "pkg/add/old.py": None,
    "pkg/add/new.py": "from ._rt import role2\nNEW = role2()\n",
    "pkg/add/yamls/model.yaml": "backbone: [new]\n",
}

COMMIT = """
import base64, json, sys
from pathlib import Path
from bbpatch.disk.transaction import commit
package = Path(sys.argv[1])
change = json.loads(sys.argv[2])
commit(package, {package / k: None if v is None else base64.b64decode(v) for k, v in change.items()}, "test")
"""


def change_set(tree: dict[str, str], target: dict[str, str | None]) -> dict[str, str | None]:
    """What turns ``tree`` into ``target``: the files that differ (None: delete)."""
    return {key: data for key, data in target.items() if tree.get(key) != data}


def lay_out(root: Path, files: dict[str, str | None]) -> None:
    for key, text in files.items():
        if text is not None:
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_text(text)


def folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")


def imports_tasks(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import pkg.tasks"], cwd=root, env={"PYTHONPATH": str(root)}, capture_output=True
    )


@pytest.fixture(scope="module")
def committer():
    with Preloaded(["bbpatch.disk.transaction"]) as python:
        yield python


def commit_killed_at_every_write(committer, root: Path, change: dict[str, str | None]) -> int:
    package = root / "pkg"
    before, before_folders = tree_bytes(root), folders(root)
    encoded = json.dumps(
        {
            key.removeprefix("pkg/"): None if v is None else base64.b64encode(v.encode()).decode()
            for key, v in change.items()
        }
    )
    code = f"import sys\nsys.argv = ['commit', {str(package)!r}, {encoded!r}]\n{COMMIT}"
    kills = 0
    while True:
        run = committer.run(code, {"BBPATCH_KILL_AFTER_WRITES": str(kills)})
        if run.returncode == 0:
            return kills
        assert run.returncode == -signal.SIGKILL, run.stdout
        assert (package / JOURNAL).is_file()
        imported = imports_tasks(root)
        assert imported.returncode == 0, f"killed after write {kills}:\n{imported.stderr.decode()}"
        assert recover_pending(package) and tree_bytes(root) == before, f"killed after write {kills}"
        assert folders(root) == before_folders, f"killed after write {kills}: a folder it made is left"
        kills += 1


@pytest.mark.parametrize(
    "start,target",
    [(STOCK, PATCHED), (PATCHED, STOCK), (PATCHED, REFRESHED), (REFRESHED, STOCK)],
    ids=["install", "remove", "refresh", "remove-refreshed"],
)
def test_a_change_set_killed_after_any_write_leaves_the_package_importable(committer, tmp_path, start, target):
    target = {**{key: None for key in start}, **target}
    lay_out(tmp_path, start)
    assert imports_tasks(tmp_path).returncode == 0
    change = change_set(start, target)
    new_folders = {Path(key).parent for key in change if change[key] is not None} - {Path(key).parent for key in start}
    kills = commit_killed_at_every_write(committer, tmp_path, change)
    assert kills == 1 + len(new_folders) + len(change)  # after the journal, each folder made, each write
    assert tree_bytes(tmp_path) == {k: v.encode() for k, v in target.items() if v is not None}
    assert imports_tasks(tmp_path).returncode == 0


def test_a_careless_order_breaks_the_same_change_sets(tmp_path):
    """The rules are not vacuous: writing ``install`` and ``refresh`` in the change set's own order breaks the
    import on the way, which the order above avoids."""
    for start, target in ((STOCK, PATCHED), (PATCHED, REFRESHED)):
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        lay_out(root, start)
        change = change_set(start, {**{key: None for key in start}, **target})
        broken = 0
        for key in sorted(change, key=lambda k: k != "pkg/tasks.py"):  # tasks.py first, as before this order
            if change[key] is None:
                (root / key).unlink()
            else:
                lay_out(root, {key: change[key]})
            broken += imports_tasks(root).returncode != 0
        assert broken


def order_of(tmp_path: Path, before: dict[str, str | None], after: dict[str, str | None]) -> list[str]:
    package = tmp_path / "pkg"

    def as_bytes(files):
        return {package / key: None if text is None else text.encode() for key, text in files.items()}

    return [
        path.relative_to(package).as_posix() for path in import_safe_order(package, as_bytes(before), as_bytes(after))
    ]


def test_a_cycle_or_a_file_that_is_not_python_still_gets_every_path_once(tmp_path):
    after = {"a.py": "from pkg import b\n", "b.py": "import pkg.a\n", "broken.py": "def (:\n", "c.py": "import pkg.b\n"}
    assert order_of(tmp_path, dict.fromkeys(after), after) == ["broken.py", "a.py", "b.py", "c.py"]


def test_relative_imports_and_the_package_rule(tmp_path):
    """``from . import x`` and ``from .x import y`` name modules; importing a package waits for all of it."""
    after = {
        "user.py": "import pkg.sub\n",
        "sub/__init__.py": "from . import leaf\n",
        "sub/leaf.py": "from ..base import thing\n",
        "sub/other.py": "X = 1\n",
        "base.py": "thing = 1\n",
    }
    order = order_of(tmp_path, dict.fromkeys(after), after)
    assert order == ["sub/other.py", "base.py", "sub/leaf.py", "sub/__init__.py", "user.py"]


def test_the_import_scan_finds_every_import_a_full_parse_finds(tmp_path):
    """Every import statement of every module of the installed ultralytics and of bbpatch's Addmodules, at any
    depth, found by the line scan as ``ast.walk`` over the whole file finds it."""
    modules = [*installed_package().rglob("*.py"), *(Path(__file__).parent.parent / "modules").glob("*.py")]
    total = 0
    for module in modules:
        data = module.read_bytes()
        full = {ast.dump(n) for n in ast.walk(ast.parse(data)) if isinstance(n, (ast.Import, ast.ImportFrom))}
        assert full <= {ast.dump(n) for n in import_statements(data)}, module
        total += len(full)
    assert total > 2000
