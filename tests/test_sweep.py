"""The release sweep (make sweep) on the CI sample of real wheels, and its verdicts on trees made to fail."""

from __future__ import annotations

import pytest

from bbpatch.engine.tree import version_tuple
from bbpatch.releases import sweep


def index_entry(filename: str, url: str) -> list[dict]:
    return [{"filename": filename, "url": url, "digests": {"sha256": "0" * 64}}]


INDEX = {
    "releases": {
        "8.0.10": index_entry("ultralytics-8.0.10-py3-none-any.whl", "../w/a.whl"),
        "8.0.9": index_entry("ultralytics-8.0.9-py3-none-any.whl", "../w/b.whl"),
        "8.0.129": index_entry("ultralytics-8.0.129.tar.gz", "../w/c.tar.gz"),
        "8.1.0rc1": index_entry("ultralytics-8.1.0rc1-py3-none-any.whl", "x"),
        "7.9.9": index_entry("ultralytics-7.9.9-py3-none-any.whl", "x"),
    }
}


@pytest.fixture(scope="module")
def index_releases():
    found, _ = sweep.releases()
    return found


@pytest.fixture(scope="module")
def by_version(index_releases):
    return {r.version: r for r in index_releases}


def test_release_list_keeps_final_8x_wheels_in_version_order():
    found, no_wheel = sweep.releases(INDEX)
    assert [r.version for r in found] == ["8.0.9", "8.0.10"]
    assert found[1].url.startswith("https://") and found[1].url.endswith("/w/a.whl")
    assert no_wheel == ["8.0.129"]


def test_ci_sample_sweeps_ok_or_refused_cleanly(index_releases):
    sample = sweep.ci_sample(index_releases)
    versions = [r.version for r in sample]
    assert set(sweep.BOUNDARIES) | {index_releases[-1].version} <= set(versions)
    assert len(index_releases) // 25 <= len(versions) <= len(index_releases) // 25 + len(sweep.BOUNDARIES) + 2
    sweep.download_all(sample)
    verdicts = sweep.run_sweep(sample, workers=2, echo=lambda line: None)
    failed = [v.line() for v in verdicts if v.outcome not in (sweep.OK, sweep.REFUSED)]
    assert not failed, "\n".join(failed)
    for verdict in verdicts:  # the yolo/ layout is recognised exactly where it exists
        assert ("yolo/ layout" in verdict.detail) == (version_tuple(verdict.version) <= (8, 0, 135)), verdict.line()


def test_unsupported_tree_is_refused_with_exit_2_and_untouched(by_version, tmp_path):
    release = by_version["8.0.136"]
    sweep.download(release)
    root = sweep.unpack(release.wheel, tmp_path)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_text(tasks.read_text("utf-8").replace("def parse_model(", "def parse_model_renamed("), "utf-8")
    before = sweep.snapshot(root)
    outcome, detail = sweep.sweep_tree(root)  # the CLI's exit code on the same tree is part of the verdict
    assert (outcome, sweep.snapshot(root)) == (sweep.REFUSED, before)
    assert "parse_model" in detail and "not supported" in detail


def test_refusal_that_changed_the_tree_is_a_failure(by_version, tmp_path):
    release = by_version["8.0.136"]
    sweep.download(release)
    root = sweep.unpack(release.wheel, tmp_path)
    before = sweep.snapshot(root)
    (root / "ultralytics" / "utils" / "stray").mkdir()  # an empty folder left behind counts as a change
    with pytest.raises(sweep.Broken, match=r"added \['ultralytics/utils/stray'\]"):
        sweep.check_refusal(root, before, RuntimeError("refused"))


def test_sweep_cli_rejects_unknown_versions(capsys):
    with pytest.raises(SystemExit, match="7.0.0"):
        sweep.main(["7.0.0"])


def test_the_release_caches_are_the_checkouts_own(monkeypatch):
    # the modules live two folders down (patcher/releases/): a cache beside them would download every wheel again
    import importlib
    from pathlib import Path

    from bbpatch.releases import upstream_tests
    from tests.conftest import RELEASE_CACHE

    monkeypatch.delenv("BBPATCH_RELEASE_CACHE", raising=False)
    assert importlib.reload(sweep).CACHE == RELEASE_CACHE
    assert upstream_tests.CACHE == RELEASE_CACHE.parent / "upstream"
    assert Path(sweep.__file__).resolve().parents[2] / ".cache" == RELEASE_CACHE.parent
