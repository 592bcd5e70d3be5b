"""bbpatch's edits on one file's source: bytes in, bytes out. Nothing here reads or writes a file."""

from __future__ import annotations

import re

import libcst as cst

from bbpatch.engine import hand_patched
from bbpatch.engine.edits import EDITS, FILES, AnchorMissing
from bbpatch.engine.edits.import_addmodules import users_import_lines
from bbpatch.engine.encoding import source_encoding
from bbpatch.engine.tree import Tree, TreeError

LEFTOVER_MARKS = ("bbpatch_", "ultralytics.nn.Addmodules", "backbone = False")
# the marks as bbpatch writes them: 'backbone = False' on its own, not the column's 'two_backbone = False'
LEFTOVER = re.compile(r"bbpatch_|ultralytics\.nn\.Addmodules|(?<![\w.])backbone = False")


class RevertRefused(TreeError):
    """The user changed bbpatch's own inserted code: undoing it would need a guess."""


def parse_source(tree: Tree, key: str, data: bytes) -> cst.Module:
    source_encoding(tree.file(key), data)  # bytes Python itself would reject: one clear line
    try:
        return cst.parse_module(data)
    except cst.ParserSyntaxError as error:
        raise TreeError(
            f"{tree.file(key)}: not valid Python ({error.message}, line {error.raw_line}); fix or reinstall it"
        ) from None


def edits_for(key: str):
    return [edit for edit in EDITS if edit.file == key]


def patch_source(tree: Tree, key: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    module = parse_source(tree, key, data)
    statuses = {}
    for edit in edits_for(key):
        try:
            module, statuses[edit.name] = edit.apply_with_status(module)
        except AnchorMissing as error:
            raise TreeError(f"{tree.package}/{error}") from None
    return module.bytes, statuses  # in the file's own encoding


def unpatch_source(tree: Tree, key: str, data: bytes) -> bytes:
    """Undo bbpatch's edits only, keeping everything else in the file (the user's later edits included)."""
    module = parse_source(tree, key, data)
    users_lines = users_import_lines(module)  # an adopted tree's own recipe imports: not leftovers
    for edit in reversed(edits_for(key)):
        module = edit.revert(module)
    text = module.code  # rendered once: Module.bytes would render the whole tree again
    leftovers = [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if LEFTOVER.search(line) and line.strip() not in users_lines
    ]
    if leftovers:
        raise RevertRefused(
            f"{tree.file(key)}: bbpatch's inserted code was edited since apply (lines {leftovers[:5]}); "
            "undo that by hand or run 'bbpatch revert --force' (restores the original, saves your version beside it)"
        )
    return text.encode(module.encoding)


def edit_statuses(tree: Tree, sources: dict[str, bytes]) -> dict[str, str]:
    statuses = {}
    for key, data in sources.items():
        module = parse_source(tree, key, data)
        statuses.update({edit.name: edit.status(module) for edit in edits_for(key)})
    return statuses


def hand_patch_evidence(sources: dict[str, bytes], shipped: frozenset = frozenset()) -> list[str]:
    """Signs of the blog recipe (or of bbpatch edits without a manifest) in an unpatched-looking tree; ``shipped``:
    bbpatch's class names, so that a hand-made parse_model branch for one of them counts too."""
    tasks = hand_patched.evidence(sources.get(FILES[0], b""), shipped)
    return tasks + _torch_utils_evidence(sources.get(FILES[1], b""))


def _torch_utils_evidence(data: bytes) -> list[str]:
    """bbpatch's get_flops edit with no manifest (a tree an earlier revert left half done, or a copied file)."""
    if b"backbone" not in data:
        return []
    try:
        module = cst.parse_module(data)
    except (cst.ParserSyntaxError, UnicodeDecodeError):
        return []  # reported by whatever reads it next
    edits = [edit.name for edit in edits_for(FILES[1]) if edit.applied(module)]
    return [f"torch_utils.py carries bbpatch's {', '.join(edits)} edit without a manifest"] if edits else []
