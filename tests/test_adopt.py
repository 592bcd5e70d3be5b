"""bbpatch adopt on trees patched by hand with the blog recipe (tests/recipe_trees.py follows the seeds' steps on
real release wheels): every model YAML of the tree builds the same model after adoption (layers, parameters,
state-dict keys and shapes; the hand-patched model's weights loaded strict give the same outputs bit for bit),
status says adopted, revert gives the hand-patched tree back byte for byte; bad input changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from recipe_trees import Backbone, Variant, make_recipe_tree

from bbpatch import api
from bbpatch.adopt import adoption

from conftest import copy_package, release_package
from helpers import run_cli, run_json, tree_bytes

BUILD = """
import hashlib, json, sys, torch
from pathlib import Path
from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel

def tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in tensors(o)]
    return []

def digest(tensors):
    sha = hashlib.sha256()
    for t in tensors:
        sha.update(t.detach().contiguous().numpy().tobytes())
    return sha.hexdigest()

mode, store, result = {mode!r}, Path({store!r}), {{}}
for yaml in {yamls!r}:
    name = Path(yaml).stem
    kind = RTDETRDetectionModel if "RTDETRDecoder" in Path(yaml).read_text() else DetectionModel
    torch.manual_seed(3)  # a fresh seeded build: the same parameters and BatchNorm statistics bit for bit
    fresh = kind(yaml, verbose=False)
    fresh_state = digest(fresh.state_dict().values())
    with torch.no_grad():
        image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(4))
        fresh_outputs = digest(tensors(fresh.eval()(image)))
    torch.manual_seed(0 if mode == "before" else 1)
    model = kind(yaml, verbose=False)
    if mode == "before":
        torch.save(model.state_dict(), store / f"{{name}}.pt")
    else:
        model.load_state_dict(torch.load(store / f"{{name}}.pt"), strict=True)
    model.eval()
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        outputs = tensors(model(x))
    if mode == "before":
        torch.save(outputs, store / f"{{name}}.out")
        same = None
    else:
        before = torch.load(store / f"{{name}}.out")
        same = len(before) == len(outputs) and all(torch.equal(a, b) for a, b in zip(before, outputs))
    result[name] = {{
        "layers": [[m.i, m.f, m.type, type(m).__module__ + "." + type(m).__name__,
                    sum(p.numel() for p in m.parameters())] for m in model.model],
        "state": [[k, list(v.shape)] for k, v in model.state_dict().items()],
        "stride": model.stride.tolist(),
        "eps": sorted({{m.eps for m in model.model[0].modules() if isinstance(m, torch.nn.BatchNorm2d)}}),
        "same_outputs": same,
        "fresh": [fresh_state, fresh_outputs],
    }}
print(json.dumps(result))
"""

SHIPPED = """
import json
from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel
shipped = RTDETRDetectionModel("rtdetr-fasternet.yaml", verbose=False).model[0]
users = DetectionModel({yaml!r}, verbose=False).model[0]
print(json.dumps({{m: [type(b).__module__, b.type, b.i] for m, b in (("shipped", shipped), ("users", users))}}))
"""

ALL_KINDS = (
    Backbone("FasterNet"),  # a name bbpatch ships too
    Backbone("MyNet", yaml_args="16"),
    Backbone("MobileNetV4ConvSmall", attr="channel", with_args=False, yaml_args="16"),  # seed 000/002
)
VARIANTS = {
    "8.4.190 Addmodules star import, set, width_list+channel, FLOPs edit, RT-DETR": (
        "8.4.190",
        Variant(backbones=ALL_KINDS, rtdetr=True),
    ),
    "8.4.190 nn/backbone named import before nn.modules, tuple, is_backbone, getattr, m.np, no FLOPs edit": (
        "8.4.190",
        Variant(
            backbones=ALL_KINDS[:2],
            star_import=False,
            import_after=False,
            dispatch="tuple",
            flag="is_backbone",
            forward_test="getattr(m, 'backbone', False)",
            class_np=True,
            flops_edit=False,
        ),
    ),
    "8.3.100 'm is A' branches, no 640 probe": ("8.3.100", Variant(dispatch="is", probe_640=False)),
    "8.1.47 Addmodules before nn.modules": ("8.1.47", Variant(backbones=ALL_KINDS, import_after=False)),
    "8.0.200 seed 001 literally, RT-DETR": ("8.0.200", Variant(class_np=True, rtdetr=True)),
    "8.4.190 factory functions, one named like bbpatch's mobilenetv4_small": (
        "8.4.190",
        Variant(
            backbones=(
                Backbone("ShuffleNet", factory="shufflenetv2"),
                Backbone("MobileNetV4Small", attr="channel", factory="mobilenetv4_small"),
            )
        ),
    ),
    "8.3.70 the blog column's tasks.py (goldyolo, two_backbone), relative imports, probe in training mode": (
        "8.3.70",
        Variant(backbones=ALL_KINDS[:2], column=True, relative=True),
    ),
    "8.4.190 the blog column's tasks.py, ch padded by range(5 - len(ch)), RT-DETR": (
        "8.4.190",
        Variant(backbones=ALL_KINDS, column=True, range_pad=True, rtdetr=True),
    ),
    "8.1.47 the other family: 'isinstance(c2, list) and m not in {...}' with the flag set in the tail": (
        "8.1.47",
        Variant(backbones=ALL_KINDS[1:], column=True, exclude=True, range_pad=True, flag="is_backbone"),
    ),
    "8.3.100 modules only: an Addmodules import and a branch of the user's, no backbone": (
        "8.3.100",
        Variant(backbones=()),
    ),
}


def recipe_tree(tmp_path, version, variant):
    root = copy_package(release_package(version), tmp_path / "tree")
    yamls = make_recipe_tree(root / "ultralytics", variant, root / "models")
    return root, yamls


def build(root, yamls, mode, store):
    store.mkdir(exist_ok=True)
    return run_json(root, BUILD.format(mode=mode, store=str(store), yamls=[str(y) for y in yamls]))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_adopt_keeps_every_model_and_reverts_byte_exact(variant, tmp_path):
    version, spec = VARIANTS[variant]
    root, yamls = recipe_tree(tmp_path, version, spec)
    hand_patched = tree_bytes(root)
    before = build(root, yamls, "before", tmp_path / "store")

    result = run_cli("adopt", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    package = root / "ultralytics"
    for name, data in hand_patched.items():  # every user file kept as it was; only the two patched files differ
        if not name.endswith(("nn/tasks.py", "utils/torch_utils.py")):
            assert (root / name).read_bytes() == data, name
    users_import = "from .Addmodules import *\n" if spec.relative else "from ultralytics.nn.Addmodules import *\n"
    assert users_import in (package / "nn/tasks.py").read_text() or not spec.star_import
    assert "elif m in (Low_FAM,):\n            c2 = sum(ch[x] for x in f)\n" in (package / "nn/tasks.py").read_text()

    after = build(root, yamls, "after", tmp_path / "store")
    for name, built in after.items():
        assert built["same_outputs"] is True, name
        assert {k: v for k, v in built.items() if k != "same_outputs"} == {
            k: v for k, v in before[name].items() if k != "same_outputs"
        }, name
        assert built["eps"] == [0.001], name  # ultralytics' initialize_weights reached the user's backbone as before
        if name == "yolov9-column-stock":  # a stock backbone, the user's split neck
            assert built["layers"][1][0] == 1 and built["layers"][5][3].endswith(".SplitMaps")
        elif spec.backbones:
            assert built["layers"][1][0] == 5  # the recipe's numbering: the layer after the backbone is 5
            if name.startswith("yolov9-column"):  # CBLinear, CBFuse and the split neck built as before
                classes = [row[3].rsplit(".", 1)[-1] for row in built["layers"]]
                assert classes[3:6] == ["CBLinear", "CBFuse", "SplitMaps"], classes
            elif not name.startswith("rtdetr"):  # the user's block, named like bbpatch's, stays the user's
                assert built["layers"][-2][3].endswith(".goldyolo.conv_bn_hswish")

    status = run_cli("status", str(root), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["state"] == "patched" and report["adopted"]["from"] == adoption.FROM_RECIPE
    assert set(report["adopted"]["backbones"]) == {b.name for b in spec.backbones}
    assert {b.name: b.attr for b in spec.backbones} == {
        n: e["channels"] for n, e in report["adopted"]["backbones"].items()
    }

    reverted = run_cli("revert", str(root))
    assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    assert tree_bytes(root) == hand_patched


def test_shipped_yamls_build_bbpatchs_class_beside_the_users_of_the_same_name(tmp_path):
    """The user's FasterNet wins in their YAMLs (above); bbpatch's rtdetr-fasternet.yaml builds bbpatch's FasterNet."""
    root, _ = recipe_tree(tmp_path, "8.4.190", Variant(backbones=ALL_KINDS))
    api_report = adoption.adopt(root)
    assert api_report.state == "adopted"
    built = run_json(root, SHIPPED.format(yaml=str(root / "models/yolov8-fasternet.yaml")))
    assert built == {
        "shipped": ["ultralytics.nn.Addmodules.bbpatch.timm_backbones", "FasterNet", 4],
        "users": ["ultralytics.nn.Addmodules.fasternet", "FasterNet", 4],
    }


COLUMN = Variant(backbones=ALL_KINDS[:2], column=True)  # the blog column's tasks.py (goldyolo, two_backbone)


@pytest.mark.parametrize("spec", [Variant(), COLUMN], ids=["seed", "column"])
def test_verify_fast_passes_on_an_adopted_tree(fresh_tree, tmp_path, spec):
    yamls = make_recipe_tree(fresh_tree / "ultralytics", spec, fresh_tree / "models")
    adoption.adopt(fresh_tree)
    mine = [arg for yaml in (yamls if spec.column else yamls[:1]) for arg in ("--yaml", str(yaml))]
    result = run_cli("verify", str(fresh_tree), "--fast", "--yaml", "yolov8-mobilenetv4", *mine)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_dry_run_prints_the_diff_and_writes_nothing(fresh_tree):
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    before = tree_bytes(fresh_tree)
    result = run_cli("adopt", str(fresh_tree), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "-        elif m in {FasterNet, MyNet}:" in result.stdout
    assert "+from ultralytics.nn.Addmodules.bbpatch import *" in result.stdout
    assert "+++ b/ultralytics/nn/Addmodules/bbpatch/_adopted.py" in result.stdout
    assert tree_bytes(fresh_tree) == before


def refused(root, code: int) -> list[str]:
    before = tree_bytes(root)
    result = run_cli("adopt", str(root))
    assert result.returncode == code, result.stdout + result.stderr
    assert tree_bytes(root) == before
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), lines
    return lines


def test_a_stock_tree_is_refused_and_apply_named(fresh_tree):
    (line,) = refused(fresh_tree, 3)
    assert "nn/tasks.py: not patched by hand with the blog recipe" in line and "'bbpatch apply'" in line


def test_a_bbpatch_tree_is_refused(fresh_tree):
    api_report = api.apply(fresh_tree)
    assert api_report.state == "patched"
    (line,) = refused(fresh_tree, 2)
    assert "bbpatch_manifest.json: this tree is patched by bbpatch" in line


def test_an_unrecognised_recipe_variant_is_refused_one_line_per_reason(fresh_tree):
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    text = tasks.read_text()
    text = text.replace("            m = m(*args)\n", "            m = m(*args, 3)\n", 1)
    text = text.replace("            ch.extend(c2)\n", "            ch.extend(c2)\n            print(c2)\n", 1)
    tasks.write_text(text)
    lines = refused(fresh_tree, 4)
    assert len(lines) == 2, lines
    assert "builds 'm(*args, 3)', not m(*args) or m()" in lines[0] and "tasks.py line " in lines[0]
    assert "also runs 'print(c2)'" in lines[1]


@pytest.mark.parametrize("spec", [Variant(), COLUMN], ids=["seed", "column"])
def test_an_adopted_fork_merges_a_newer_upstream_release_cleanly(tmp_path, spec):
    """The fork workflow (tests/test_git.py) on an adopted tree: the merge driver keeps the user's lines and the
    adopted layout, the post-merge hook refreshes the record, the recipe backbones still build."""
    from test_git import assert_fully_patched_at, bbpatch, git, put_release

    old, new = "8.4.100", "8.4.190"  # 8.3.100 -> 8.4.190 conflicts in the user's own import line (docs/adopt.md)
    repo = tmp_path / "fork"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    put_release(old, repo / "ultralytics")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"ultralytics {old}")
    git(repo, "branch", "upstream")
    yamls = make_recipe_tree(repo / "ultralytics", spec, repo / "models")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the blog recipe, by hand")
    assert bbpatch("adopt", cwd=repo).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bbpatch adopt")
    before = build(repo, yamls, "before", tmp_path / "before")
    git(repo, "checkout", "-q", "upstream")
    put_release(new, repo / "ultralytics")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"ultralytics {new}")
    git(repo, "checkout", "-q", "main")

    assert bbpatch("git-setup", cwd=repo).returncode == 0
    merge = git(repo, "merge", "--no-edit", "upstream", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert f"refreshed the patch record and YAMLs for ultralytics {new}" in merge.stderr
    assert_fully_patched_at(repo, "ultralytics", new)
    tasks = (repo / "ultralytics/nn/tasks.py").read_text()
    assert "from ultralytics.nn.Addmodules import *\n" in tasks and "elif m in (Low_FAM,):" in tasks
    assert "from ultralytics.nn.Addmodules.bbpatch import *" in tasks and "m = m(*args)" not in tasks
    report = json.loads(bbpatch("status", "--json", cwd=repo).stdout)
    assert set(report["adopted"]["backbones"]) == {"FasterNet", "MyNet"}
    assert (repo / "ultralytics/nn/Addmodules/bbpatch/_adopted.py").is_file()

    if spec.column:  # the user's flags and their branches merged with upstream's lines, still there
        assert "two_backbone = True\n" in tasks and "goldyolo = True\n" in tasks and "not two_backbone" not in tasks
    after = build(repo, yamls, "before", tmp_path / "after")
    for name, built in after.items():
        first = 1 if name == "yolov9-column-stock" else 5
        assert built["layers"][0] == before[name]["layers"][0] and built["layers"][1][0] == first, name
        assert [row[3] for row in built["layers"]] == [row[3] for row in before[name]["layers"]], name
        assert built["stride"] == [8.0, 16.0, 32.0]


def test_adopt_never_imports_torch_timm_or_ultralytics(fresh_tree):
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    code = (
        "import sys; from bbpatch.cli import main\n"
        f"for args in (['adopt', {str(fresh_tree)!r}, '--dry-run'], ['adopt', {str(fresh_tree)!r}]):\n"
        "    try:\n        main(args)\n"
        "    except SystemExit as done:\n        assert done.code == 0, (args, done.code)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'ultralytics'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (fresh_tree / "ultralytics/nn/Addmodules/bbpatch/_adopted.py").is_file()


@pytest.mark.parametrize("kill_after", [0, 1, 3, 40])
def test_a_kill_during_adopt_leaves_a_tree_the_next_command_recovers(fresh_tree, kill_after):
    """SIGKILL after the journal (0), a created folder, tasks.py, and partway through the files: the next command
    rolls the journal back to the hand-patched tree, byte for byte; adopt then succeeds."""
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    hand_patched = tree_bytes(fresh_tree)
    killed = run_cli("adopt", str(fresh_tree), env={"BBPATCH_KILL_AFTER_WRITES": str(kill_after)})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stdout, killed.stderr)
    status = run_cli("status", str(fresh_tree))
    assert status.returncode == 4 and "an interrupted bbpatch adopt was rolled back" in status.stdout
    assert tree_bytes(fresh_tree) == hand_patched
    assert run_cli("adopt", str(fresh_tree)).returncode == 0


def test_apply_on_an_adopted_tree_keeps_the_layout_and_revert_still_gives_the_hand_patched_tree(fresh_tree):
    """A newer bbpatch (here: the manifest says an older one wrote it) re-applies through the adoption record."""
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    hand_patched = tree_bytes(fresh_tree)
    adoption.adopt(fresh_tree)
    adopted = tree_bytes(fresh_tree)
    assert run_cli("apply", str(fresh_tree)).stdout.splitlines()[-1].startswith("already patched by bbpatch")
    manifest = fresh_tree / "ultralytics/nn/Addmodules/bbpatch_manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "bbpatch": "0.0.1"}))
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 0 and "updated:" in result.stdout, result.stdout + result.stderr
    assert tree_bytes(fresh_tree) == adopted  # the same adopted tree, manifest included
    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == hand_patched


def test_a_loop_tail_that_keeps_a_recipe_backbone_apart_is_refused(fresh_tree):
    """The other family's tail 'isinstance(c2, list) and m not in {...}' is adopted (VARIANTS); naming a recipe
    backbone there builds that backbone twice, which no YAML survives: adopt says so and changes nothing."""
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    text = tasks.read_text().replace(
        "        if isinstance(c2, list):\n            m_ = m\n",
        "        if isinstance(c2, list) and m not in {Low_FAM, MyNet}:\n            m_ = m\n",
        1,
    )
    tasks.write_text(text)
    (line,) = refused(fresh_tree, 4)
    assert "the loop tail keeps MyNet apart, which a recipe branch builds as a backbone" in line


def test_an_adoption_record_that_would_put_code_into_the_registry_is_refused(fresh_tree):
    """The manifest is data from disk; the registry adopt writes from it holds names only."""
    make_recipe_tree(fresh_tree / "ultralytics", Variant(), fresh_tree / "models")
    adoption.adopt(fresh_tree)
    manifest = fresh_tree / "ultralytics/nn/Addmodules/bbpatch_manifest.json"
    record = json.loads(manifest.read_text())
    record["adopted"]["backbones"]['x"); import os; ("'] = {"channels": "width_list", "args": True}
    manifest.write_text(json.dumps(record))
    before = tree_bytes(fresh_tree)
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 2 and "unreadable bbpatch manifest ('adopted': backbone" in result.stderr
    assert tree_bytes(fresh_tree) == before


def test_each_finding_is_said_once_at_its_own_line(fresh_tree):
    """Two loop tails reading the same are two findings at two lines; one edit made at two places is one note."""
    make_recipe_tree(fresh_tree / "ultralytics", Variant(column=True), fresh_tree / "models")
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    recipe_text = tasks.read_text()
    adopted = run_cli("adopt", str(fresh_tree), "--dry-run")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    notes = [line for line in adopted.stdout.splitlines() if "note: " in line]
    assert len(notes) == len(set(notes)), notes
    assert sum("'i + 4 if backbone else i' -> 'i' (2 places)" in note for note in notes) == 1, notes

    tail = "isinstance(c2, list) and not goldyolo and not two_backbone"
    tasks.write_text(recipe_text.replace(tail, "isinstance(c2, list) and m not in {MyNet}"))
    lines = refused(fresh_tree, 4)
    assert len(lines) == 2 and len(set(lines)) == 2, lines
    text = tasks.read_text().splitlines()
    for line in lines:
        number = int(line.split("tasks.py line ")[1].split(":")[0])
        assert "and m not in {MyNet}" in text[number - 1], (line, text[number - 1])


def test_a_column_flag_that_no_branch_sets_is_the_recipes_own_test(fresh_tree):
    """A public tree tests 'isinstance(c2, list) and not goldyolo' and never sets goldyolo: no modules of the user's
    take a list c2 there, so the tail is the recipe's and the tree is adopted (not refused as a second family)."""
    make_recipe_tree(fresh_tree / "ultralytics", Variant(column=True), fresh_tree / "models")
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    text = tasks.read_text().replace("            goldyolo = True\n", "")
    assert "goldyolo = True" not in text
    tasks.write_text(text)
    hand_patched = tree_bytes(fresh_tree)
    result = run_cli("adopt", str(fresh_tree))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "and not goldyolo and not two_backbone: ... else:' around the stock code" in result.stdout
    adopted = tasks.read_text()
    assert "goldyolo = False\n" in adopted and "two_backbone = True\n" in adopted  # the user's flags stay
    assert "not goldyolo" not in adopted
    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == hand_patched


def test_apply_and_revert_handle_the_relative_modules_import(fresh_tree):
    """Some forks' tasks.py imports 'from .modules import (...)': apply puts bbpatch's import after it."""
    tasks = fresh_tree / "ultralytics/nn/tasks.py"
    text = tasks.read_text()
    tasks.write_text(text.replace("from ultralytics.nn.modules import (", "from .modules import (", 1))
    before = tree_bytes(fresh_tree)
    result = run_cli("apply", str(fresh_tree))
    assert result.returncode == 0, result.stdout + result.stderr
    patched = tasks.read_text()
    after_import = patched.index(")\n", patched.index("from .modules import (")) + 2
    assert patched[after_import:].startswith("from ultralytics.nn.Addmodules import *  # noqa")
    built = run_json(
        fresh_tree,
        "import json\nfrom ultralytics.nn.tasks import DetectionModel\n"
        "m = DetectionModel('yolov8-mobilenetv4.yaml', verbose=False)\n"
        "print(json.dumps([type(m.model[0]).__module__, m.model[1].i, m.stride.tolist()]))",
    )
    assert built == ["ultralytics.nn.Addmodules.timm_backbones", 5, [8.0, 16.0, 32.0]]
    assert run_cli("revert", str(fresh_tree)).returncode == 0
    assert tree_bytes(fresh_tree) == before


def test_adopt_of_the_column_tree_killed_after_every_write_is_rolled_back(tmp_path):
    """SIGKILL after the journal and after adopt's writes: the next command rolls the column tree back to the
    hand-patched bytes and folders; the last run gets to the end and adopts it. Every write index with
    ``BBPATCH_KILL_EVERY_WRITE=1`` (94 runs of adopt); else every fifth, each a different kind of write in turn,
    and the first run past the last write still has to be the one that ends the loop."""
    from test_kill_importable import BBPATCH, folders, killed_after_each_write

    from bbpatch.disk.journal import JOURNAL
    from bbpatch.engine.tree import find_tree

    from helpers import Preloaded

    root, _ = recipe_tree(tmp_path, "8.4.190", Variant(backbones=ALL_KINDS, column=True, range_pad=True))
    hand_patched, hand_folders = tree_bytes(root), folders(root)
    tree = find_tree(root)
    _, writes = adoption.plan_adopt(tree)
    created = {f for p, data in writes.items() if data is not None for f in p.parents if tree.package in f.parents}
    planned = len(writes) + len({folder for folder in created if not folder.exists()})

    with Preloaded(["bbpatch.cli"]) as bbpatch_cli:

        def between(n):
            assert (root / "ultralytics" / JOURNAL).is_file(), n

        def recovered(n):
            result = bbpatch_cli.run(BBPATCH.format(args=["status", str(root)]))
            assert "an interrupted bbpatch adopt was rolled back" in result.stdout, (n, result.stdout)
            assert tree_bytes(root) == hand_patched, f"adopt killed after write {n}: not rolled back exactly"
            assert folders(root) == hand_folders, f"adopt killed after write {n}: folders left behind"

        step = 1 if os.environ.get("BBPATCH_KILL_EVERY_WRITE") == "1" else 5
        kills = killed_after_each_write(bbpatch_cli, "adopt", root, between, recovered, step)
    assert planned + 1 <= kills < planned + 1 + step  # killed after the journal (write 0) and every step-th write
    assert run_cli("status", str(root)).returncode == 0
    assert run_cli("revert", str(root)).returncode == 0
    assert tree_bytes(root) == hand_patched and folders(root) == hand_folders
