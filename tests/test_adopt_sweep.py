"""make sweep-adopt's harness (bbpatch.releases.adopt_sweep) on recipe trees made from a real release wheel by
tests/recipe_trees.py, packed into a corpus of their own: an adoptable tree is "adopted exactly", a tree whose
model adoption changes is "different model" naming the YAML, a YAML that never built is reported as such, a stock
tree is a refusal with adopt's own line, and the exit codes say which."""

from __future__ import annotations

import sys

import pytest
from recipe_trees import Variant, make_recipe_tree

from bbpatch.releases import adopt_corpus, adopt_sweep

from conftest import copy_package, release_package

VERSION = "8.4.190"
BROKEN_YAML = "nc: 4\nbackbone:\n  - [-1, 1, NoSuchBlock, [8]]\nhead:\n  - [[0], 1, Detect, [nc]]\n"
# the user's backbone reads tasks.py and grows when bbpatch's edits are in it: adoption changes this model
WIDTH_FROM_TASKS = (
    "        super().__init__()\n"
    "        from pathlib import Path\n"
    "        if b'bbpatch' in (Path(__file__).parents[1] / 'tasks.py').read_bytes():\n"
    "            width = width * 2\n"
)


def recipe_tree(root, edit=None):
    copy_package(release_package(VERSION), root)
    package = root / "ultralytics"
    make_recipe_tree(package, Variant(), package / "cfg" / "models" / "mine")
    (package / "cfg" / "models" / "mine" / "yolov8-broken.yaml").write_text(BROKEN_YAML, "utf-8")
    if edit:
        edit(package)
    return root


def grows_after_adoption(package):
    source = package / "nn" / "Addmodules" / "fasternet.py"
    text = source.read_text("utf-8")
    source.write_text(text.replace("        super().__init__()\n", WIDTH_FROM_TASKS, 1), "utf-8")


def corpus_of(tmp_path, trees):
    """Pack each ``name -> root`` into tmp_path/corpus and write a manifest naming them."""
    corpus, entries = tmp_path / "corpus", []
    corpus.mkdir()
    for name, root in trees.items():
        data = adopt_corpus.archive_bytes(adopt_corpus.folder_files(root))
        entry = adopt_corpus.Entry(f"local/{name}", "0" * 40, "ultralytics", VERSION, "yolov8", "")
        (corpus / entry.archive_name).write_bytes(data)
        digest = adopt_corpus.sha256(corpus / entry.archive_name)
        entries.append(adopt_corpus.Entry(**{**entry.__dict__, "sha256": digest}))
    manifest = tmp_path / "manifest.json"
    adopt_corpus.save(entries, manifest)
    return corpus, manifest


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adopt-sweep")
    trees = {
        "exact": recipe_tree(tmp / "exact"),
        "grows": recipe_tree(tmp / "grows", grows_after_adoption),
        "stock": copy_package(release_package(VERSION), tmp / "stock"),
    }
    corpus, manifest = corpus_of(tmp, trees)
    docs = tmp / "adopt.md"
    docs.write_text("# adopt\n\n## Public trees\n\nold table\n\n## After adoption\n\nkept\n", "utf-8")
    entries = adopt_corpus.load(manifest)
    outcomes = adopt_sweep.sweep_trees(entries, corpus, sys.executable, jobs=1, most=None, imgsz=64)
    return {o.entry.repo.split("/")[1]: o for o in outcomes}, corpus, manifest, docs


def test_an_adoptable_tree_is_adopted_exactly(swept):
    outcome = swept[0]["exact"]
    assert outcome.result == adopt_sweep.ADOPTED, outcome.line()
    assert "<tree>" in outcome.not_built[0] or "/tmp" not in outcome.not_built[0]
    # two recipe YAMLs, the broken one, and the stock yolov8.yaml: all but the broken one built before
    assert (outcome.yamls, len(outcome.not_built)) == (4, 1), outcome.line()
    broken = outcome.not_built[0]
    assert broken.startswith("cfg/models/mine/yolov8-broken.yaml: ") and "NoSuchBlock" in broken


def test_a_tree_whose_model_adoption_changes_is_a_different_model(swept):
    outcome = swept[0]["grows"]
    assert outcome.result == adopt_sweep.DIFFERENT, outcome.line()
    changed = outcome.detail.split("; ")
    assert changed == ["cfg/models/mine/yolov8-fasternet.yaml: params, state, layers, output differ"], outcome.detail


def test_a_stock_tree_is_refused_with_adopts_line_and_left_as_it_was(swept):
    outcome = swept[0]["stock"]
    assert outcome.result == adopt_sweep.REFUSED
    assert outcome.detail.startswith("exit 3: nn/tasks.py: not patched by hand")


def test_exit_codes_and_the_docs_table(swept, tmp_path, capsys):
    outcomes, corpus, manifest, docs = swept
    assert adopt_sweep.main(["--corpus", str(tmp_path), "--manifest", str(manifest)]) == 2
    assert "archives missing" in capsys.readouterr().err
    common = ["--corpus", str(corpus), "--manifest", str(manifest), "--python", sys.executable, "--imgsz", "64"]
    assert adopt_sweep.main([*common, "stock"]) == 0  # a refusal is a result
    assert adopt_sweep.exit_code(list(outcomes.values())) == 1  # a different model fails the sweep
    adopt_sweep.write_docs(adopt_sweep.docs_table(list(outcomes.values()), None), docs)
    text = docs.read_text("utf-8")
    assert "old table" not in text and text.endswith("## After adoption\n\nkept\n")
    assert "| local/grows | 000000000000 | 8.4.190 | yolov8 | different model; 3 of 4 YAMLs built" in text


def test_the_scratch_dir_has_no_digits_for_yaml_model_load_to_rewrite():
    with adopt_sweep.scratch_dir() as scratch:
        assert scratch.is_dir() and not any(c.isdigit() for c in str(scratch))
    assert not scratch.exists()
