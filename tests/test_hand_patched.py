"""Hand edits in the style of the blog recipe and its community copies (../shared/seeds/000..002) are recognised by
what they do, whatever the names, imports and formatting: status says hand-patched (exit 4), apply refuses
(exit 4) and writes nothing. Text in comments and strings is not evidence."""

from __future__ import annotations

import pytest

from bbpatch import api
from bbpatch.engine import hand_patched

from helpers import run_cli, tree_bytes

TASKS = "ultralytics/nn/tasks.py"
FINAL_ELSE = "        else:\n            c2 = ch[f]\n"


def _branch(names: str, body: str) -> str:
    """A recipe-style branch inserted before parse_model's final ``else: c2 = ch[f]``."""
    return f"        elif m in {names}:\n" + "".join(f"            {line}\n" for line in body.splitlines()) + FINAL_ELSE


RECIPE_CH = """        if isinstance(c2, list):
            ch.extend(c2)
            if len(c2) != 5:
                ch.insert(0, 0)
        else:
            ch.append(c2)
"""

HAND_EDITS = {
    # seed 002: the model imported from nn/modules (no Addmodules), its own set of names, a bare m()
    "seed 002 branch, no Addmodules import": (
        [
            (
                "from ultralytics.nn.modules import (",
                "from .modules.FasterNet import FasterNet\nfrom ultralytics.nn.modules import (",
            ),
            (FINAL_ELSE, _branch("{FasterNet}", "m = m()\nc2 = m.width_list  # channel list\nbackbone = True")),
        ],
        "a second backbone branch",
    ),
    # seed 000: the backbone keeps its channels in .channel, not .width_list
    "seed 000 branch reading m.channel": (
        [(FINAL_ELSE, _branch("{MobileNetV4ConvSmall, MobileNetV4ConvMedium}", "m = m(*args)\nc2 = m.channel"))],
        "takes c2 from the layer instance",
    ),
    "tuple dispatch, other formatting": (
        [(FINAL_ELSE, _branch("(EfficientViT_M0 , )", "m=m( *args )\nc2=m.width_list\nbackbone=True"))],
        "a second backbone branch",
    ),
    "flag only": ([(FINAL_ELSE, _branch("{CustomNet}", "backbone = True\nc2 = 256"))], "sets a backbone flag"),
    "list-valued ch (seed 001/002 step 6)": ([("        ch.append(c2)\n", RECIPE_CH)], "grows ch by a list"),
    "ch grown by +=": (
        [("        ch.append(c2)\n", "        ch += c2 if isinstance(c2, list) else [c2]\n")],
        "grows ch by a list",
    ),
    "i + 4 indexing (seed 001/002 step 5)": (
        [("m_.i, m_.f, m_.type = i, f, t", "m_.i, m_.f, m_.type = i + 4 if backbone else i, f, t")],
        "shifts layer indices by 4",
    ),
    "forward loop on a backbone attribute (seed 001/002 step 7)": (
        [
            (
                "            x = m(x)  # run\n",
                "            if hasattr(m, 'backbone'):\n                x = m(x)[-1]\n"
                "            else:\n                x = m(x)  # run\n",
            )
        ],
        "checks a backbone attribute",
    ),
    "width_list read elsewhere": (
        [("        ch.append(c2)\n", "        ch.append(c2 if not hasattr(m_, 'w') else m_.width_list[-1])\n")],
        "reads width_list",
    ),
    # issue 23: only a branch added by hand for a name bbpatch ships, no import: bbpatch's branch would never see it
    "a hand-made branch for a class bbpatch ships": (
        [(FINAL_ELSE, _branch("{MobileNetV4ConvSmall}", "c2 = args[0]"))],
        "a branch of its own for MobileNetV4ConvSmall, a class the bbpatch package ships",
    ),
    "a hand-made 'm is' branch for a block bbpatch ships": (
        [(FINAL_ELSE, "        elif m is conv_bn_hswish:\n            c2 = args[0]\n" + FINAL_ELSE)],
        "a branch of its own for conv_bn_hswish",
    ),
    "a hand-made frozenset branch for a backbone bbpatch ships": (
        [(FINAL_ELSE, "        elif m in frozenset({FasterNetT0}):\n            c2 = args[0]\n" + FINAL_ELSE)],
        "a branch of its own for FasterNetT0",
    ),
    "relative Addmodules import": (
        [("from ultralytics.nn.modules import (", "from .Addmodules import *\nfrom ultralytics.nn.modules import (")],
        "imports an Addmodules package",
    ),
}


def _hand_edit(tree, edits) -> None:
    tasks = tree / TASKS
    text = tasks.read_text("utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    tasks.write_text(text, "utf-8")


@pytest.mark.parametrize("variant", sorted(HAND_EDITS))
def test_recipe_style_hand_edits_are_recognised_and_refused(fresh_tree, variant):
    edits, meaning = HAND_EDITS[variant]
    _hand_edit(fresh_tree, edits)
    before = tree_bytes(fresh_tree)

    status = run_cli("status", str(fresh_tree))
    assert status.returncode == 4, status.stdout + status.stderr
    assert meaning in status.stdout and "tasks.py line " in status.stdout

    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "looks patched by hand with the blog recipe" in result.stderr and meaning in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree_bytes(fresh_tree) == before


def test_the_evidence_names_the_line(fresh_tree):
    edits, _ = HAND_EDITS["seed 002 branch, no Addmodules import"]
    _hand_edit(fresh_tree, edits)
    text = (fresh_tree / TASKS).read_text()
    line = text[: text.index("backbone = True")].count("\n") + 1
    evidence = hand_patched.evidence(text.encode())
    assert f"tasks.py line {line}: parse_model sets a backbone flag" in evidence


def test_comments_and_strings_are_not_evidence(fresh_tree):
    """Mentions in comments, docstrings and strings (a user's notes about the recipe) are not hand edits."""
    _hand_edit(
        fresh_tree,
        [
            ("        ch.append(c2)\n", "        ch.append(c2)  # the recipe does ch.extend(c2) with m.width_list\n"),
            ("m_.i, m_.f, m_.type = i, f, t", "m_.i, m_.f, m_.type = i, f, t  # recipe: i + 4 if backbone else i"),
            (
                "from ultralytics.nn.modules import (",
                "NOTE = 'from ultralytics.nn.Addmodules import *'\nfrom ultralytics.nn.modules import (",
            ),
        ],
    )
    assert api.status(fresh_tree).state == "clean"
    assert api.apply(fresh_tree).state == "patched"


def test_a_bbpatch_patched_file_without_its_manifest_is_not_patched_again(fresh_tree):
    """bbpatch's own edits match by what they do too: apply refuses to stack on them when the manifest is gone."""
    api.apply(fresh_tree)
    (fresh_tree / "ultralytics/nn/Addmodules/bbpatch_manifest.json").unlink()
    before = tree_bytes(fresh_tree)
    with pytest.raises(api.HandPatched, match="calls bbpatch helpers"):
        api.apply(fresh_tree)
    assert tree_bytes(fresh_tree) == before


def test_stock_releases_show_no_evidence(fresh_tree):
    """Every stock tasks.py in the test cache (8.0.0 .. 8.4.190 as downloaded) is clean by these patterns."""
    from test_releases import LEGACY_RELEASES, RELEASES

    from conftest import RELEASE_CACHE, release_package

    for version in RELEASES + LEGACY_RELEASES:  # the releases the suite tests, whichever xdist worker unzips them
        release_package(version)
    checked = [fresh_tree / TASKS, *sorted(RELEASE_CACHE.glob("*/ultralytics/nn/tasks.py"))]
    for tasks in checked:
        assert hand_patched.evidence(tasks.read_bytes()) == [], tasks


def test_a_patched_torch_utils_without_a_manifest_is_evidence(fresh_tree):
    """What 0.2.0's revert left on yolo/-layout trees: torch_utils still patched, tasks.py and manifest gone."""
    api.apply(fresh_tree)
    package = fresh_tree / "ultralytics"
    patched_torch_utils = (package / "utils/torch_utils.py").read_bytes()
    api.revert(fresh_tree)
    (package / "utils/torch_utils.py").write_bytes(patched_torch_utils)
    before = tree_bytes(fresh_tree)
    report = api.status(fresh_tree)
    assert report.state == "hand-patched"
    assert report.notes == ["torch_utils.py carries bbpatch's flops_full_size edit without a manifest"]
    with pytest.raises(api.HandPatched, match="flops_full_size"):
        api.apply(fresh_tree)
    assert tree_bytes(fresh_tree) == before
