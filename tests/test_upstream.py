"""ultralytics' own tests through ``bbpatch.releases.upstream_tests``, on an unpatched and a patched copy."""

import pytest
from filelock import FileLock

from bbpatch.engine.tree import find_tree, installed_package
from bbpatch.releases import upstream_tests

DEFER_TORCHVISION = "test_cli.py::test_cli_imports_defer_torchvision"


@pytest.fixture
def sdist_cache():
    """Two of these tests may download and unpack the release's sdist into ``.cache/upstream``: xdist workers
    take turns (the library downloads without a lock)."""
    upstream_tests.CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(upstream_tests.CACHE / ".lock")):
        yield


def test_upstream_start_up_test_passes_on_both_copies_and_nothing_differs(tmp_path, capsys, sdist_cache):
    clean, patched = upstream_tests.compare([DEFER_TORCHVISION], tmp_path)
    assert clean == patched == {DEFER_TORCHVISION: upstream_tests.PASSED}
    assert upstream_tests.report(clean, patched) == 0
    assert "1 upstream tests run on both copies; 0 differ" in capsys.readouterr().out


def test_a_differing_outcome_is_reported_and_fails():
    clean = {"test_cli.py::test_a": upstream_tests.PASSED, "test_cli.py::test_b": upstream_tests.FAILED}
    patched = {"test_cli.py::test_a": upstream_tests.FAILED, "test_cli.py::test_b": upstream_tests.FAILED}
    assert upstream_tests.report(clean, patched) == 1


def test_the_release_tests_come_from_its_sdist(sdist_cache):
    tests = upstream_tests.upstream_tests(find_tree(installed_package()).version)
    assert "def test_cli_imports_defer_torchvision" in (tests / "test_cli.py").read_text(encoding="utf-8")
    assert set(upstream_tests.RUN) | set(upstream_tests.NOT_RUN) <= {p.name for p in tests.glob("test_*.py")}
