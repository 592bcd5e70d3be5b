"""Three-way merge of a file bbpatch patches: what the git merge driver and ``bbpatch resolve`` both run.

bbpatch's edits are taken out of every side (each edit knows how to undo itself), git merges the three
unpatched texts line by line, and the edits go back into the merged text for the release it now holds.
Upstream's changes and the user's own lines merge exactly as git would merge them; bbpatch's inserted lines
never take part in a conflict. When the user's own lines do conflict, each side of every conflict is
patched on its own and merged once more, so the markers enclose the user's lines and nothing of bbpatch's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bbpatch.engine.edits import FILES
from bbpatch.engine.sources import patch_source, unpatch_source
from bbpatch.engine.tree import Tree, TreeError
from bbpatch.git.repo import git

MARKERS = "<|=>"


@dataclass
class Merged:
    data: bytes
    conflicts: int = 0  # conflicting hunks left in the user's own lines
    patched: bool = False  # bbpatch's edits are in ``data``
    problem: str = ""  # why the edits could not be put back (``data`` is then the unpatched merge)


def managed_key(path: str) -> str | None:
    """The file key of a path bbpatch patches ('nn/tasks.py', 'utils/torch_utils.py'), else None."""
    path = path.replace("\\", "/")
    return next((key for key in FILES if path == key or path.endswith("/" + key)), None)


def _tree_for(path: str, key: str) -> Tree:
    """A Tree naming the package the path sits in: merges read no file of it, only error messages do."""
    package = path[: -len(key)].rstrip("/") or "."
    return Tree(package=Path(package), version="")


def merge_texts(base: bytes, ours: bytes, theirs: bytes, labels, marker_size: int, style: str) -> tuple[bytes, int]:
    """``git merge-file``: the merged bytes and the number of conflicting hunks."""
    with tempfile.TemporaryDirectory(prefix="bbpatch-merge-") as folder:
        names = []
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            (Path(folder) / name).write_bytes(data)
            names.append(name)
        style_flag = [] if style == "merge" else [f"--{style}"]
        labels_args = [arg for label in labels for arg in ("-L", label)]
        args = ["merge-file", "-p", *style_flag, f"--marker-size={marker_size}", *labels_args, *names]
        result = git(Path(folder), *args, check=False)
    if result.returncode < 0 or result.returncode > 127:
        raise TreeError(f"git merge-file failed: {result.stderr.decode('utf-8', 'replace').strip()}")
    return result.stdout, result.returncode


def _marker(line: bytes, size: int) -> str | None:
    for mark in MARKERS:
        run = mark.encode() * size
        if line.startswith(run) and line[size : size + 1] in (b"", b" ", b"\n", b"\r"):
            return mark
    return None


def conflict_sides(text: bytes, size: int) -> tuple[bytes, bytes, bytes]:
    """The whole file as each side would have it: every conflict (diff3 style) resolved to ours, base, theirs."""
    sides: tuple[list, list, list] = ([], [], [])
    current: tuple = sides
    for line in text.splitlines(keepends=True):
        mark = _marker(line, size)
        if mark == "<" and current is sides:
            current = (sides[0],)
        elif mark == "|" and current is not sides:
            current = (sides[1],)
        elif mark == "=" and current is not sides:
            current = (sides[2],)
        elif mark == ">" and current is not sides:
            current = sides
        else:
            for side in current:
                side.append(line)
    return tuple(b"".join(side) for side in sides)


def _patched(tree: Tree, key: str, data: bytes) -> bytes:
    return patch_source(tree, key, data)[0]


def merge_patched(
    path: str,
    base: bytes,
    ours: bytes,
    theirs: bytes,
    labels=("ours", "base", "theirs"),
    marker_size: int = 7,
    style: str = "merge",
) -> Merged:
    """Merge three versions of the managed file at ``path`` (relative to the repository root).

    Raises TreeError (nothing merged) when a side is not valid Python or carries bbpatch code it cannot undo.
    """
    key = managed_key(path)
    if key is None:
        raise TreeError(f"{path}: not a file bbpatch patches (nn/tasks.py, utils/torch_utils.py)")
    tree = _tree_for(path, key)
    plain = [unpatch_source(tree, key, data) for data in (base, ours, theirs)]
    text, conflicts = merge_texts(plain[0], plain[1], plain[2], labels, marker_size, "diff3")
    if plain[1] == ours and plain[2] == theirs:  # neither side is patched: git's own merge
        return Merged(merge_texts(*plain, labels, marker_size, style)[0] if conflicts else text, conflicts)
    if not conflicts:
        try:
            return Merged(_patched(tree, key, text), 0, patched=True)
        except TreeError as error:
            return Merged(text, 0, problem=str(error))
    try:
        sides = [_patched(tree, key, side) for side in conflict_sides(text, marker_size)]
    except TreeError as error:
        plain_text = merge_texts(plain[0], plain[1], plain[2], labels, marker_size, style)[0]
        return Merged(plain_text, conflicts, problem=f"{error}; resolve the conflicts, then run bbpatch apply")
    ours_side, base_side, theirs_side = sides
    merged, conflicts = merge_texts(base_side, ours_side, theirs_side, labels, marker_size, style)
    return Merged(merged, conflicts, patched=True)
