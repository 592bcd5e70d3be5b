"""The cold path: patch the two sources with bbpatch's edits and compile them, for the code cache.

The edits run through ``bbpatch.engine.sources.patch_source``, the function ``bbpatch apply`` writes with, so the
code the hook executes is the code apply would write. The result is compiled under the real file's name, with every line
number mapped back to the file on disk (see ``line_map``), so tracebacks and debuggers show the user's file.
"""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

from bbpatch.engine.encoding import decode
from bbpatch.engine.sources import hand_patch_evidence, patch_source
from bbpatch.engine.tree import TreeError, find_tree
from bbpatch.models.catalog import package_dir
from bbpatch.models.roles import shipped_names
from bbpatch.models.yaml_bases import unbuildable


def aside(reason: str) -> dict:
    return {"outcome": "aside", "reason": reason}


def compile_entry(package: Path, sources: dict[str, tuple[Path, bytes]]) -> dict:
    """A cache entry: the compiled patched modules, or why the hook stands aside for this tree."""
    try:
        tree = find_tree(package)
        evidence = hand_patch_evidence({key: data for key, (_, data) in sources.items()}, shipped_names())
        if evidence:
            return aside(f"{sources['nn/tasks.py'][0]} looks patched by hand ({'; '.join(evidence)})")
        codes, edits = {}, {}
        for key, (path, data) in sources.items():
            patched, statuses = patch_source(tree, key, data)
            codes[key] = compile_mapped(data, patched, str(path))
            edits.update(statuses)
    except TreeError as error:
        return aside(f"the edits do not fit this release: {error}")
    except Exception as error:  # noqa: BLE001 (whatever the edits or the compiler hit: stand aside, say what)
        return aside(f"cannot patch this release ({type(error).__name__}: {error})")
    shipped = sorted(p.name for p in package_dir("bbpatch.yamls").glob("*.yaml"))
    lacking = unbuildable(package, shipped)
    yamls = [name for name in shipped if name not in lacking]
    return {"outcome": "patch", "release": tree.version, "code": codes, "edits": edits, "yamls": yamls}


def line_map(original: str, patched: str) -> dict[int, int]:
    """Line of the patched text -> line of the original: its own where bbpatch kept it (re-indented or not),
    the line above where bbpatch inserted it."""
    old = [line.strip() for line in original.splitlines()]
    new = [line.strip() for line in patched.splitlines()]
    kept = {}
    for a, b, size in difflib.SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks():
        kept.update({b + k + 1: a + k + 1 for k in range(size)})
    mapping, last = {}, 1
    for line in range(1, len(new) + 2):
        last = kept.get(line, last)
        mapping[line] = last
    return mapping


def compile_mapped(original: bytes, patched: bytes, filename: str):
    module = ast.parse(patched, filename)
    lines = line_map(decode(original), decode(patched))
    for node in ast.walk(module):
        if getattr(node, "lineno", None) is None:
            continue
        node.lineno = lines.get(node.lineno, node.lineno)
        if getattr(node, "end_lineno", None) is not None:
            node.end_lineno = max(lines.get(node.end_lineno, node.end_lineno), node.lineno)
            if node.end_lineno == node.lineno and (node.end_col_offset or 0) < (node.col_offset or 0):
                node.end_col_offset = node.col_offset
    return compile(module, filename, "exec", dont_inherit=True)
