"""verify's plan (which checks run on which YAML, in which pool), read without importing torch or a tree."""

from __future__ import annotations

import pytest

from bbpatch.verify import exports, plan
from bbpatch.verify.plan import MAIN, ModelYaml

HEADS = ("Detect", "Segment", "Pose", "RTDETRDecoder")
FAMILIES = ("fasternet", "mobilenetv4", "MobileOne")


def models():
    """Every family on every head, as ``describe`` would read them (no files needed)."""
    found = []
    for family in FAMILIES:
        for head in HEADS:
            kind = "rtdetr" if head == "RTDETRDecoder" else "yolo"
            task = plan.head_task(head)
            found.append(ModelYaml(f"{kind}-{head.lower()}-{family}.yaml", kind, task, family, head))
    return found


@pytest.fixture
def venvs(monkeypatch):
    """Pretend the TFLite and CoreML venvs exist (``present``) or not."""

    def set_present(present):
        monkeypatch.setattr(plan, "isolated_python", lambda fmt: f"/venv-{fmt.name}/bin/python" if present else None)

    return set_present


def hold_every_head_and_family(names):
    held = [m for m in models() if m.name in names]
    return {m.head for m in held} == set(HEADS) and {m.family for m in held} == set(FAMILIES)


def by_id(tasks):
    return {t.id: t for t in tasks}


def test_each_family_exports_every_format_in_tasks_after_its_model_task(venvs):
    venvs(True)
    tasks = plan.plan(models())
    chosen = plan.representatives(models())
    exported = {}
    for task in tasks:
        for name in task.checks:
            if name.startswith("export_"):
                exported.setdefault(task.subject, []).append(name)
                model_task = by_id(tasks)[task.after]
                assert model_task.subject == task.subject and "forward_eval" in model_task.checks
                assert model_task.inputs["keep_model"] is True  # forward_eval saves the calibrated model
                assert "export_model" in task.takes
    assert sorted(exported) == sorted(m.name for m in chosen)
    for names in exported.values():
        assert sorted(names) == sorted(f.check_name for f in exports.FORMATS)


def test_tflite_and_coreml_run_in_one_pool_each_when_their_venv_exists(venvs):
    venvs(True)
    tasks = plan.plan(models())
    for fmt in [f for f in exports.FORMATS if f.venv]:
        mine = [t for t in tasks if fmt.check_name in t.checks]
        assert {t.pool for t in mine} == {fmt.name}
        assert all(t.checks == [fmt.check_name] and t.inputs["in_venv"] for t in mine)
        assert len(mine) == len(FAMILIES)
    main_exports = [t for t in tasks if t.pool == MAIN and any(c.startswith("export_") for c in t.checks)]
    assert all(not t.inputs["in_venv"] for t in main_exports)


def test_a_missing_venv_puts_its_check_in_the_main_pool_where_it_fails_with_the_hint(venvs):
    venvs(False)
    tasks = plan.plan(models())
    for fmt in [f for f in exports.FORMATS if f.venv]:
        assert {t.pool for t in tasks if fmt.check_name in t.checks} == {MAIN}
    assert not {t.pool for t in tasks} & {f.name for f in exports.FORMATS}


def test_pretrained_runs_once_per_timm_family_in_a_task_of_its_own(venvs):
    venvs(True)
    tasks = plan.plan(models() + [ModelYaml("yolo-timm.yaml", "yolo", "detect", "timm:resnet18", "Detect")])
    pretrained = [t for t in tasks if "pretrained" in t.checks]
    assert sorted(t.subject for t in pretrained) == ["yolo-detect-fasternet.yaml", "yolo-detect-mobilenetv4.yaml",
                                                      "yolo-timm.yaml"]  # fmt: skip
    assert all(t.checks == ["pretrained"] and t.pool == MAIN and t.after is None for t in pretrained)
    assert not [t for t in plan.plan(models(), fast=True) if "pretrained" in t.checks]  # not in --fast


def test_training_and_checkpoint_loading_follow_the_model_task(venvs):
    venvs(True)
    tasks = by_id(plan.plan(models()))
    trains = [t for t in tasks.values() if "train" in t.checks]
    assert len(trains) == len(FAMILIES) and all(t.checks == ["train"] for t in trains)
    for train in trains:
        assert "build" in tasks[train.after].checks
        loaders = [t for t in tasks.values() if t.after == train.id]
        assert sorted(t.pool for t in loaders) == sorted((plan.LOAD, plan.SAFE_LOAD))


def test_onnx_samples_with_the_exported_representatives_cover_every_head_and_family_once(venvs):
    venvs(True)
    tasks = plan.plan(models())
    chosen = plan.representatives(models())
    sampled = {t.subject for t in tasks if "onnx" in t.checks}
    assert not sampled & {m.name for m in chosen}  # their export_onnx already exports them
    assert hold_every_head_and_family(sampled | {m.name for m in chosen})


def test_onnx_samples_cover_every_family_themselves_when_the_export_matrix_is_not_run(venvs):
    venvs(True)
    tasks = plan.plan(models(), only=["onnx"])
    assert hold_every_head_and_family({t.subject for t in tasks if "onnx" in t.checks})
    assert not any(c.startswith("export_") or c == "train" for t in tasks for c in t.checks)
    assert not any(t.inputs.get("keep_model") for t in tasks)  # nothing exports: nothing saved


def test_the_representatives_model_tasks_come_first_in_the_main_pool(venvs):
    """Training, checkpoint loading and the export pools wait for them: a worker takes the first runnable task."""
    venvs(True)
    main = [t for t in plan.plan(models()) if t.pool == MAIN]
    chosen = {m.name for m in plan.representatives(models())}
    first = main[: len(chosen)]
    assert {t.subject for t in first} == chosen and all("build" in t.checks for t in first)
    trains = [i for i, t in enumerate(main) if "train" in t.checks]
    plain = [i for i, t in enumerate(main) if t.subject not in chosen]
    assert max(trains) < min(plain)  # the longest tasks before the short ones


def test_fast_plans_builds_only():
    tasks = plan.plan(models(), fast=True)
    assert {c for t in tasks for c in t.checks} == {"build"}
    assert {t.pool for t in tasks} == {MAIN} and not any(t.after for t in tasks)


def checks_of(tasks, name):
    return {t.subject for t in tasks if name in t.checks}


def test_every_yaml_runs_the_model_checks_and_a_covering_few_the_slower_ones(venvs):
    """GFLOPs and fusion depend on the modules a model is made of: a few YAMLs holding every family and every head
    prove them, the rest only build and run."""
    venvs(True)
    tasks = plan.plan(models())
    everyone = {m.name for m in models()}
    for name in ("build", "forward_train", "forward_eval", "strides"):
        assert checks_of(tasks, name) == everyone
    covering = checks_of(tasks, "fuse")
    assert checks_of(tasks, "gflops") == checks_of(tasks, "gflops_full") == covering
    assert len(covering) < len(everyone)
    assert hold_every_head_and_family(covering)
    assert {m.name for m in plan.representatives(models())} <= covering


def test_formats_limit_the_export_matrix_and_the_onnx_samples(venvs):
    venvs(True)
    tasks = plan.plan(models(), formats=("openvino", "tflite"))
    exported = {c for t in tasks for c in t.checks if c.startswith("export_")}
    assert exported == {"export_openvino", "export_tflite"}
    assert {t.pool for t in tasks if "export_tflite" in t.checks} == {"tflite"}
    assert not {t.pool for t in tasks} & {"coreml"}  # an unselected venv format starts no worker
    assert not checks_of(tasks, "onnx")  # ONNX is not a chosen format: no ONNX samples either
    assert hold_every_head_and_family(checks_of(tasks, "fuse"))


def test_no_formats_plans_no_export_and_saves_no_model(venvs):
    venvs(True)
    tasks = plan.plan(models(), formats=())
    assert not any(c.startswith("export_") or c == "onnx" for t in tasks for c in t.checks)
    assert not any(t.inputs.get("keep_model") for t in tasks)
    assert checks_of(tasks, "train")  # the rest of the full gate is unchanged
