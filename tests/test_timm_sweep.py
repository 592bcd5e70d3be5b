"""The timm sweep (make sweep-timm) on a few small models: a row per base and step, a failure is a row, the cache
and the table."""

from __future__ import annotations

import shutil

import pytest

from bbpatch.releases import timm_families, timm_sweep

UNKNOWN = "no_such_timm_model_e1"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("timm-sweep-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timm_sweep, "CACHE", path)
        yield path


def small_targets():
    return [
        timm_sweep.Target("resnet", "test_resnet", None),
        timm_sweep.Target("vision_transformer", "test_vit", None),
        timm_sweep.Target("nowhere", UNKNOWN, None),
    ]


@pytest.fixture(scope="module")
def swept(cache):
    lines = []
    chosen = timm_sweep.run_sweep(small_targets(), jobs=2, echo=lines.append)
    return {t.model: t for t in chosen}, lines


def direct_build_error(model_name):
    """What building the backbone directly says (None: it builds): the reference for the sweep's row."""
    from bbpatch.modules.timm_backbones import TimmBackbone

    try:
        TimmBackbone(model_name)
    except ValueError as error:
        return str(error)
    return None


def test_family_choice_is_the_smallest_counted_like_a_real_build():
    import timm

    models = timm_families.family_models(["pit"])["pit"]
    assert len(models) == len(timm.list_models(module="pit"))
    name, params = timm_families.choose(models)
    real = {n: sum(p.numel() for p in timm.create_model(n).parameters()) for n in ("pit_ti_224", "pit_xs_224")}
    assert dict(models)["pit_xs_224"] == real["pit_xs_224"]
    assert (name, params) == ("pit_ti_224", real["pit_ti_224"])
    assert timm_families.choose(models, limit=1000) is None
    with pytest.raises(KeyError, match="not_a_family"):
        timm_families.family_models(["pit", "not_a_family"])


def test_a_working_model_is_ok_in_every_base_with_its_figures(swept):
    target = swept[0]["test_resnet"]
    assert [r["base"] for r in target.rows] == list(timm_sweep.BASES)
    for row in target.rows:
        assert (row["outcome"], row["step"], row["reason"]) == ("ok", "", ""), row
        assert row["params"] > 100_000 and row["gflops"] > 0


def test_refusal_row_says_what_a_direct_build_says(swept):
    error = direct_build_error("test_vit")
    for row in swept[0]["test_vit"].rows:
        if error is None:  # it builds: the row got past the build (what a later step says is the sweep's finding)
            assert row["outcome"] == "ok" or row["step"] not in ("yaml", "build"), row
        else:
            assert (row["outcome"], row["step"], row["reason"]) == ("refused", "build", f"ValueError: {error}")


def test_failure_is_a_row_and_the_sweep_goes_on(swept):
    targets, lines = swept
    rows = targets[UNKNOWN].rows
    assert [r["base"] for r in rows] == list(timm_sweep.BASES)
    for row in rows:
        assert row["outcome"] in ("failed", "refused") and row["step"] in ("yaml", "build"), row
        assert UNKNOWN in row["reason"] and "\n" not in row["reason"]
    assert [line.split()[1] for line in lines] == ["test_resnet", "test_vit", UNKNOWN]  # in order, every target


def test_rerun_takes_every_row_from_the_cache(swept, cache):
    again = {t.model: t for t in timm_sweep.run_sweep(small_targets(), jobs=2, echo=lambda _: None)}
    for model, target in swept[0].items():
        assert again[model].cached and again[model].rows == target.rows
    assert len(list((cache / "rows").glob("*.json"))) == 3
    uncached = timm_sweep.Target("resnet", "resnet18", None)
    lines = []
    timm_sweep.run_sweep([*small_targets(), uncached], from_cache=True, echo=lines.append)  # runs nothing
    assert uncached.rows == [] and lines[-1].endswith("not run (nothing cached)")
    assert "; 1 not run yet)" in timm_sweep.count_sentence(timm_sweep.counts([*again.values(), uncached]))


def test_digest_covers_the_modules_and_the_yaml_derivation(tmp_path, monkeypatch):
    copy = tmp_path / "patcher"
    shutil.copytree(timm_sweep.PATCHER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(timm_sweep, "PATCHER", copy)
    before = timm_sweep.source_digest()
    with open(copy / "cli" / "models.py", "a", encoding="utf-8") as cli:  # the CLI decides no row
        cli.write("# a comment\n")
    assert timm_sweep.source_digest() == before
    with open(copy / "models" / "yamlgen.py", "a", encoding="utf-8") as derivation:
        derivation.write("# a comment\n")
    assert timm_sweep.source_digest() != before
    stack = timm_sweep.versions()
    assert timm_sweep.row_key("m", stack, before) != timm_sweep.row_key("m", {**stack, "timm": "0"}, before)


@pytest.mark.parametrize("preload", [True, False], ids=["fork", "new-python"])
def test_timeout_is_a_row_and_never_cached(tmp_path, cache, preload):
    probes = timm_sweep.Probes(timm_sweep.patched_tree(tmp_path), tmp_path, preload=preload)
    try:
        target = timm_sweep.sweep_target(timm_sweep.Target("resnet", "resnet18", None), probes, {}, "x", timeout=1)
    finally:
        probes.close()
    assert [(r["outcome"], r["reason"]) for r in target.rows] == [("failed", "killed after 1 s (timeout)")] * 2
    assert not (cache / "rows" / f"{timm_sweep.row_key('resnet18', {}, 'x')}.json").exists()


def test_table_and_count_written_between_the_markers(swept, tmp_path):
    targets = [*swept[0].values(), timm_sweep.Target("beit", None, 86_000_000)]
    docs, readme = tmp_path / "backbones.md", tmp_path / "README.md"
    docs.write_text(f"intro\n{timm_sweep.TABLE_START}\nold\n{timm_sweep.TABLE_END}\nafter\n", "utf-8")
    readme.write_text(f"Any timm model: {timm_sweep.COUNT_START}old{timm_sweep.COUNT_END}.\n", "utf-8")
    timm_sweep.write_docs(targets, timm_sweep.versions(), docs, readme)
    text = docs.read_text("utf-8")
    assert text.startswith("intro\n") and text.endswith(f"{timm_sweep.TABLE_END}\nafter\n") and "old" not in text
    assert "| resnet | `test_resnet` |  | ok | " in text and "| beit | (none under 60M) | 86.0M | not swept" in text
    cause = next(line for line in text.splitlines() if f"{UNKNOWN} (yolov8n)" in line)  # grouped by cause
    assert cause.startswith("- 2 x ") and "MODEL" in cause and f"{UNKNOWN} (rtdetr-l)" in cause
    assert " of 4 timm families work in both YOLO and RT-DETR" in readme.read_text("utf-8")
    (tmp_path / "plain.md").write_text("no markers\n", "utf-8")
    counted = readme.read_text("utf-8")
    with pytest.raises(SystemExit, match="plain.md: the markers"):
        timm_sweep.write_docs(targets, timm_sweep.versions(), tmp_path / "plain.md", readme)
    assert readme.read_text("utf-8") == counted  # nothing written


@pytest.mark.parametrize("preload", [True, False], ids=["fork", "new-python"])
def test_cpu_limit_is_a_row_and_never_cached(tmp_path, cache, preload):
    probes = timm_sweep.Probes(timm_sweep.patched_tree(tmp_path), tmp_path, preload=preload, cpu_limit=1)
    try:
        target = timm_sweep.sweep_target(timm_sweep.Target("resnet", "resnet18", None), probes, {}, "y", timeout=600)
    finally:
        probes.close()
    assert [(r["outcome"], r["reason"]) for r in target.rows] == [("failed", "over 1 CPU-seconds (the CPU limit)")] * 2
    assert not (cache / "rows" / f"{timm_sweep.row_key('resnet18', {}, 'y')}.json").exists()


def test_cli_bad_input_is_one_line_and_runs_nothing(cache):
    with pytest.raises(SystemExit, match="^error: --write-docs writes the table of every family"):
        timm_sweep.main(["--families", "pit", "--write-docs"])
    with pytest.raises(SystemExit, match=r"^error: not timm model modules: no_family \(timm "):
        timm_sweep.main(["--families", "pit", "no_family"])
