"""Each edit on real release sources: applies where its anchor is, is idempotent, reverts to the exact bytes.

One test group per edit module in patcher/edits (mirrors the registry), run on the oldest and newest release.
"""

from __future__ import annotations

import libcst as cst
import pytest

from bbpatch.engine.edits import EDITS, AnchorMissing
from bbpatch.engine.edits.base import TASKS, TORCH_UTILS

from conftest import release_package

RELEASES = ("8.0.200", "8.4.190")


def source(version: str, key: str) -> str:
    package = release_package(version)
    path = package / key if (package / key).exists() else package / "yolo" / key
    return path.read_text("utf-8")


@pytest.fixture(scope="module", params=RELEASES)
def sources(request):
    return request.param, {key: cst.parse_module(source(request.param, key)) for key in (TASKS, TORCH_UTILS)}


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.name)
def test_edit_applies_alone_and_reverts_exactly(edit, sources):
    version, modules = sources
    original = modules[edit.file]
    patched = edit.apply(original)
    expected = "n/a" if (edit.name, version) == ("safe_load", "8.0.200") else "applied"
    assert edit.status(patched) == expected
    if expected == "applied":
        assert patched.code != original.code
    assert edit.apply(patched).code == patched.code, "second apply changed the source"
    assert edit.revert(patched).code == original.code


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.name)
def test_edit_is_missing_on_stock_source(edit, sources):
    _, modules = sources
    assert edit.status(modules[edit.file]) in ("missing", "n/a")


EXPECTED_LINES = {
    "import_addmodules": "from ultralytics.nn.Addmodules import *",
    "backbone_flag": "    backbone = False",
    "yaml_name": "        t = m\n",
    "backbone_args": "        if not bbpatch_takes_raw_args(m):\n            for j, a in enumerate(args):",
    "backbone_branch": 'elif bbpatch_role(m) == "backbone":',
    "block_branch": 'elif bbpatch_role(m) == "block":',
    "backbone_layer": "            m_.backbone = True",
    "layer_type": "if not (isinstance(c2, list) and isinstance(m, torch.nn.Module)):",
    "layer_index": "x % (i + 4 if backbone else i)",
    "channel_list": "ch[:0] = [0] * (5 - len(ch))\n            c2 = c2[-1]",
    "forward_outputs": "x = bbpatch_save_backbone_outputs(x, y, self.save)",
    "stride_probe": "s = bbpatch_probe_size(self.model, s)",
    "flops_full_size": 'if any(getattr(m, "backbone", False) for m in model.modules()):',
    "fuse_hook": "bbpatch_reparameterize(self)",
    "safe_load": "ultralytics.nn.Addmodules",
}


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.name)
def test_edit_inserts_its_code(edit):
    version = "8.4.100" if edit.name in ("safe_load", "flops_full_size") else "8.4.190"
    patched = edit.apply(cst.parse_module(source(version, edit.file))).code
    assert EXPECTED_LINES[edit.name] in patched


def test_flops_full_size_lands_where_attention_models_skip_the_probe():
    """8.4.113 .. 8.4.163 write `stride = None if attn else max(...)`: the edit lands after it and reverts exactly."""
    edit = next(e for e in EDITS if e.name == "flops_full_size")
    original = (release_package("8.4.130") / TORCH_UTILS).read_text("utf-8")
    assert "stride = None if attn else max(" in original
    module = edit.apply(cst.parse_module(original))
    assert edit.status(module) == "applied" and EXPECTED_LINES[edit.name] in module.code
    assert edit.revert(module).code == original


def test_registry_covers_every_edit_module():
    import pkgutil

    import bbpatch.engine.edits

    modules = {i.name for i in pkgutil.iter_modules(bbpatch.engine.edits.__path__)} - {"base", "branches"}
    assert modules == {e.name for e in EDITS}


def test_import_lands_after_modules_import_never_above_future():
    patched = EDITS[0].apply(cst.parse_module(source("8.4.190", TASKS))).code
    lines = patched.splitlines()
    assert lines.index("from __future__ import annotations") < lines.index(
        next(line for line in lines if "ultralytics.nn.Addmodules" in line)
    )
    compile(patched, "tasks.py", "exec")


def test_stride_probe_touches_only_detection_model():
    """8.4.100+ has a second `s = 256` (semantic segmentation); only DetectionModel's probe changes."""
    edit = next(e for e in EDITS if e.name == "stride_probe")
    patched = edit.apply(cst.parse_module(source("8.4.190", TASKS))).code
    assert patched.count("bbpatch_probe_size") == 1
    assert patched.count("s = 256") == source("8.4.190", TASKS).count("s = 256")


def test_forward_outputs_wraps_every_y_loop():
    """_predict_once, RTDETR, World and YOLOE predict loops all get the backbone spread."""
    edit = next(e for e in EDITS if e.name == "forward_outputs")
    original = source("8.4.190", TASKS)
    patched = edit.apply(cst.parse_module(original)).code
    assert (
        patched.count("bbpatch_save_backbone_outputs")
        == original.count("y.append(x if m.i in self.save else None)")
        == 4
    )


def test_forward_outputs_recognises_the_wrapper_bbpatch_0_1_0_wrote():
    """A tree patched by an earlier release counts as applied and reverts; it is not wrapped a second time."""
    edit = next(e for e in EDITS if e.name == "forward_outputs")
    original = source("8.4.190", TASKS)
    current = edit.apply(cst.parse_module(original)).code
    earlier = current.replace('if vars(m).get("backbone", False):', 'if getattr(m, "backbone", False):')
    assert earlier.count('getattr(m, "backbone", False)') == 4
    module = cst.parse_module(earlier)
    assert edit.status(module) == "applied"
    assert edit.apply(module).code == earlier
    assert edit.revert(module).code == original


def test_missing_anchor_names_file_function_and_expectation():
    text = source("8.4.190", TASKS).replace("        else:\n            c2 = ch[f]\n", "")
    edit = next(e for e in EDITS if e.name == "backbone_branch")
    with pytest.raises(
        AnchorMissing,
        match=r"nn/tasks.py: parse_model has no final 'else: c2 = ch\[f\]' branch in a parse_model\(d, \.\.\.\); "
        "this layout is not supported",
    ):
        edit.apply(cst.parse_module(text))


def test_backbone_branch_attaches_only_where_parse_model_names_its_dict_d():
    """The inserted branch passes ``d`` to bbpatch_backbone (backbone_scales): a renamed parameter must not patch."""
    edit = next(e for e in EDITS if e.name == "backbone_branch")
    original = source("8.4.190", TASKS)
    assert "t, m = bbpatch_backbone(t, m, args, d)" in edit.apply(cst.parse_module(original)).code
    renamed = original.replace("def parse_model(d, ch, verbose=True):", "def parse_model(cfg, ch, verbose=True):")
    assert renamed != original
    with pytest.raises(AnchorMissing, match=r"parse_model\(d, \.\.\.\)"):
        edit.apply(cst.parse_module(renamed))


@pytest.mark.parametrize("version", RELEASES)
def test_layer_table_prints_the_index_yamls_use(version):
    """parse_model's verbose table numbers layers after a backbone from 5, like the YAML 'from' indices."""
    edit = next(e for e in EDITS if e.name == "layer_index")
    patched = edit.apply(cst.parse_module(source(version, TASKS))).code
    assert "{i + 4 if backbone else i:>3}" in patched
    compile(patched, "tasks.py", "exec")
