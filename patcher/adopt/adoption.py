"""``bbpatch adopt``: take over a tree patched by hand with the blog recipe (docs/adopt.md).

The recipe's edits come out of tasks.py and torch_utils.py (bbpatch.engine.recipe), bbpatch's go in, and nothing of the
user's moves: their module files stay where they are, unchanged, and so does their ``nn/Addmodules/__init__.py``.
bbpatch's own package then goes to ``nn/Addmodules/bbpatch/`` (or ``nn/Addmodules/`` where the recipe's modules
live elsewhere), with a registry file, ``_adopted.py``, naming the classes the recipe's branch built as backbones:
bbpatch's backbone branch builds them as that branch did (same arguments, ``c2`` from the same attribute).

The manifest records the hand-patched bytes as the originals, so ``bbpatch revert`` gives the hand-patched tree
back byte for byte, and an ``adopted`` entry, so that status says what the tree was and a later ``bbpatch apply``
(a new bbpatch, a merged upstream release) keeps the adopted layout.
"""

from __future__ import annotations

import libcst as cst

from bbpatch import __version__
from bbpatch.disk.manifest import Manifest, sha256
from bbpatch.disk.records import (
    Report,
    diff_of,
    original_sources,
    read_manifest,
    read_source,
    release_notes,
    shipped_files,
    symlink_notes,
)
from bbpatch.disk.transaction import commit, locked, recover_pending
from bbpatch.disk.writes import planned_writes
from bbpatch.engine import recipe
from bbpatch.engine.edits.base import TASKS, TORCH_UTILS
from bbpatch.engine.edits.import_addmodules import EDIT as IMPORT_EDIT
from bbpatch.engine.recipe import recipe_removed  # noqa: F401  (where it lived before 0.4)
from bbpatch.engine.sources import hand_patch_evidence
from bbpatch.engine.tree import ADDMODULES, LOCK, MANIFEST, Tree, TreeError, find_tree
from bbpatch.models.roles import shipped_names

ADOPTED_PACKAGE = f"{ADDMODULES}/bbpatch"
REGISTRY = "_adopted.py"
FROM_RECIPE = "the blog recipe's hand edits"


class NotAdoptable(TreeError):
    """adopt changed nothing: one line per reason."""


class NotRecipePatched(NotAdoptable):
    pass


class UnknownRecipe(NotAdoptable):
    pass


class AlreadyPatched(NotAdoptable):
    pass


# --- what the tree holds ---------------------------------------------------------------------------------------------


def modules_folder(tasks_base: bytes) -> str:
    """Where bbpatch's package goes: beside the user's, inside it, when tasks.py imports an Addmodules package."""
    return ADOPTED_PACKAGE if IMPORT_EDIT.imports_users_package(cst.parse_module(tasks_base)) else ADDMODULES


def record_of(found: recipe.Recipe, modules: str, tasks_base: bytes) -> dict:
    backbones = {b.name: {"channels": b.channels, "args": b.with_args} for b in found.backbones.values()}
    record = {"from": FROM_RECIPE, "modules": modules, "backbones": dict(sorted(backbones.items()))}
    imported = sorted(imported_names(tasks_base) & bbpatch_names())
    if imported:
        record["imported"] = imported
    return record


def imported_names(tasks: bytes) -> set[str]:
    """Names tasks.py binds with ``from X import name`` at module level (a user's ``from .backbone.x import A``)."""
    names = set()
    for statement in cst.parse_module(tasks).body:
        for node in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
            if isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
                names |= {
                    cst.Module([]).code_for_node(alias.asname.name if alias.asname else alias.name)
                    for alias in node.names
                }
    return names


def bbpatch_names() -> set[str]:
    """The classes bbpatch's package exports, read without importing it (the catalog and bbpatch_role lines)."""
    return set(shipped_names())


def registry_source(tree: Tree, adopted: dict) -> bytes:
    """``_adopted.py`` in bbpatch's package: data only, every name checked to be an identifier (manifest.py)."""
    depth = adopted["modules"].count("/") + 1
    shipped = "../" * depth + tree.yaml_dir
    rows = "".join(
        f'    "{name}": ("{entry["channels"]}", {entry["args"]}),\n' for name, entry in adopted["backbones"].items()
    )
    return (
        '"""Written by bbpatch adopt from the blog recipe\'s parse_model branch (docs/adopt.md); bbpatch revert '
        'removes it."""\n\n'
        "# name in tasks.py: (attribute c2 came from, built with the YAML's args)\n"
        f"RECIPE_BACKBONES = {{\n{rows}}}\n"
        f"USER_NAMES = {tuple(adopted.get('imported', ()))!r}  # tasks.py imports yours by these names: not exported\n"
        f"SHIPPED_YAMLS = {shipped!r}  # bbpatch's YAMLs, relative to this folder: they build bbpatch's classes\n"
    ).encode()


def describe(backbones: dict, shown: int = 6) -> str:
    """The recipe's backbones in one short phrase: names with their channel attribute, the first few of many."""
    if not backbones:
        return "no recipe backbones (modules only)"
    names = [f"{name} ({entry['channels']})" for name, entry in backbones.items()]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} recipe backbone{'s' if len(names) > 1 else ''}: {', '.join(names[:shown])}{more}"


def status_note(manifest: Manifest) -> str:
    adopted = manifest.adopted
    return (
        f"adopted from {adopted['from']}: {describe(adopted['backbones'])}; bbpatch's package in "
        f"{adopted['modules']}/; 'bbpatch revert' gives back the hand-patched files"
    )


# --- the plan --------------------------------------------------------------------------------------------------------


def _refuse_unless_recipe(tree: Tree, current: dict[str, bytes]) -> None:
    manifest = read_manifest(tree)
    if manifest is not None:
        raise AlreadyPatched(
            f"{tree.package / MANIFEST}: this tree is patched by bbpatch {manifest.bbpatch} already; "
            "nothing to adopt ('bbpatch status' says how it stands)"
        )
    evidence = hand_patch_evidence(current)
    if not evidence:
        raise NotRecipePatched(
            f"{tree.file(TASKS)}: not patched by hand with the blog recipe (none of its edits found); "
            "for a stock tree 'bbpatch apply' is the command"
        )
    own = [sign for sign in evidence if "bbpatch" in sign]
    if own:
        raise UnknownRecipe(
            f"{tree.file(TASKS)}: carries bbpatch's own edits without a manifest ({'; '.join(own)}), not the recipe's; "
            "restore the file (git checkout) and run bbpatch apply"
        )


def plan_adopt(tree: Tree) -> tuple[Report, dict]:
    current = {key: read_source(tree, key) for key in (TASKS, TORCH_UTILS)}
    _refuse_unless_recipe(tree, current)
    try:
        found, tasks_base, utils_base = recipe.read(current[TASKS], current[TORCH_UTILS])
    except recipe.UnrecognisedRecipe as error:
        raise UnknownRecipe(
            "\n".join(
                f"{tree.package}/{problem}: not a recipe form adopt knows; nothing was changed"
                for problem in error.problems
            )
        ) from None
    adopted = record_of(found, modules_folder(tasks_base), tasks_base)
    report, writes = plan_files(tree, current, {TASKS: tasks_base, TORCH_UTILS: utils_base}, current, adopted)
    report.notes += [f"took out: {line}" for line in found.removed_lines()]
    report.notes += [f"kept: {line}" for line in dict.fromkeys(found.kept)]
    return report, writes


def plan_update(tree: Tree, manifest: Manifest) -> tuple[Report, dict]:
    """``bbpatch apply`` on an adopted tree: bbpatch's edits and files brought up to date, the layout kept."""
    current = {key: read_source(tree, key) for key in (TASKS, TORCH_UTILS)}
    bases = original_sources(tree, manifest)
    before = {}
    for key, data in current.items():
        record = manifest.files.get(key)
        unchanged = record is not None and sha256(data) == record.patched_sha256
        before[key] = record.original if unchanged else bases[key]  # revert still gives the hand-patched file back
    report, writes = plan_files(tree, before, bases, current, manifest.adopted, manifest)
    report.state = "updated"
    return report, writes


def plan_files(tree, before, bases, current, adopted, old: Manifest | None = None) -> tuple[Report, dict]:
    """The writes: bbpatch's edits on the recipe-free bases, its package and YAMLs, the registry, the manifest."""
    manifest = Manifest(__version__, tree.version, adopted=adopted)
    files = shipped_files(tree, adopted["modules"])
    files[f"{adopted['modules']}/{REGISTRY}"] = registry_source(tree, adopted)
    writes = planned_writes(tree, before, bases, current, files, old, manifest)
    return Report(tree, "adopted", manifest.edits, bbpatch=__version__, adopted=adopted), writes


def adopt(path=None, dry_run: bool = False) -> Report:
    tree = find_tree(path)
    if dry_run:
        recovered = recover_pending(tree.package)
        report, writes = plan_adopt(tree)
        report.notes = recovered + report.notes
        report.diff = diff_of(tree, writes)
        return report
    with locked(tree.package / LOCK) as recovered:
        report, writes = plan_adopt(tree)
        report.notes = recovered + report.notes + symlink_notes(tree)
        commit(tree.package, writes, "adopt")
    report.notes += release_notes(tree)
    return report
