"""The order a change set is written in, so that the tree imports at every instant between two writes.

A process killed between two writes leaves a half-written tree until the next bbpatch command rolls the journal
back, and what the user runs next is usually their training script, not bbpatch. So ``commit`` writes any change
set (apply, revert, a refresh, a rollback, whatever a later command commits) in import-safe order, two rules:

1. what a module will import is in place before it: when a file's new bytes import from a module of the
   change set something its old bytes did not (or anything: ``import m``, ``from m import *``), that module
   is written first;
2. a module lets go of an import before that import changes: when a file's old bytes import from a module
   something its new bytes no longer do (a deleted file imports nothing), the file is written or deleted first.

A package's modules count as imported by whatever imports the package, its own ``__init__`` included (an
``__init__`` may import every module beside it, as Addmodules' does). So ``apply`` writes the whole Addmodules
package before ``nn/tasks.py``, which star-imports it; ``revert`` writes ``nn/tasks.py`` (which then no longer
imports Addmodules) before the first Addmodules file goes; a ``utils/torch_utils.py`` that gave ``tasks.py`` a
new name would be written before it on apply and after it on revert.

Among files the rules leave free, new files (nothing imports them yet) come first, then changed ones, then
deletions; among new or changed ones, files that are not modules (YAMLs, the manifest: code reads them, which
no import shows) before modules, so that a refresh's new ``tasks.py`` finds the new YAMLs; then the change
set's own order. Imports are read from the bytes before and after (``import_statements``), nothing is run.
No order helps where a file's old and new bytes need different names from one module (its old bytes cannot
run with that module's new bytes, nor the other way round): such a cycle is broken at its first file, by the
same tie rule.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

CREATED, CHANGED, DELETED = range(3)
ANYTHING = "*"  # ``import m``, ``from m import *``, ``from p import m``: which of m's names get used is unknown


def import_safe_order(package: Path, before: dict[Path, bytes | None], after: dict[Path, bytes | None]) -> list[Path]:
    """The paths of ``after`` (bytes: write, None: delete) in the order that keeps ``package`` importable;
    ``before`` holds their bytes now (None: no such file)."""
    graph = _ImportGraph(package, after)
    placed = {path for path, data in after.items() if data is not None}
    goes_after: dict[Path, set[Path]] = defaultdict(set)  # path -> the paths written or deleted before it
    for path in after:
        will_import, imported = graph.imports(path, after[path]), graph.imports(path, before.get(path))
        for module in will_import.keys() | imported.keys():
            new, old = will_import.get(module, set()), imported.get(module, set())
            if module in placed and new and (ANYTHING in new or not _covers(old, new)):
                goes_after[path].add(module)  # rule 1
            if old and not _covers(new, old):
                goes_after[module].add(path)  # rule 2
    position = {path: index for index, path in enumerate(after)}

    def tie_break(path: Path) -> tuple[int, bool, int]:
        kind = DELETED if after[path] is None else CREATED if before.get(path) is None else CHANGED
        code_after_data = kind != DELETED and graph.module_name(path) is not None
        return kind, code_after_data, position[path]

    return _dependencies_first(list(after), goes_after, tie_break)


def _covers(names: set[str], others: set[str]) -> bool:
    return ANYTHING in names or others <= names


def _dependencies_first(paths: list[Path], goes_after: dict[Path, set[Path]], key) -> list[Path]:
    """A topological order of ``paths``, the smallest ``key`` first among those free to go; a cycle is broken at
    its smallest key."""
    waiting = {path: goes_after[path] & set(paths) - {path} for path in paths}
    order = []
    while waiting:
        free = [path for path, blockers in waiting.items() if not blockers] or list(waiting)
        chosen = min(free, key=key)
        order.append(chosen)
        del waiting[chosen]
        for blockers in waiting.values():
            blockers.discard(chosen)
    return order


IMPORT_LINE = re.compile(rb"^[ \t]*(?:import|from)[ \t]", re.MULTILINE)


def import_statements(data: bytes) -> list[ast.stmt]:
    """The import statements that begin a line of ``data``, at any depth (a function's deferred import too).

    Parsed one statement at a time: parsing and walking whole files (``tasks.py`` and ``torch_utils.py``,
    before and after) made ordering apply's change set ten times as slow (0.8 s against 0.08 s on a busy
    machine). An import that shares its line with another statement (``if x: import y``) is not seen; a line
    of a string that reads like an import is parsed too, which can only add an ordering constraint.
    """
    statements = []
    for match in IMPORT_LINE.finditer(data):
        try:
            statements += ast.parse(_logical_line(data, match.start()).decode("utf-8", "replace").strip()).body
        except (SyntaxError, ValueError):  # prose in a docstring, a conflicted merge: not an import
            continue
    return statements


def _logical_line(data: bytes, start: int) -> bytes:
    """The statement starting at ``start``: up to the line where its parentheses close, past ``\\`` endings."""
    depth, end = 0, start
    while True:
        line_end = data.find(b"\n", end)
        line_end = len(data) if line_end < 0 else line_end
        line = data[end:line_end]
        depth += line.count(b"(") - line.count(b")")
        if (depth <= 0 and not line.rstrip().endswith(b"\\")) or line_end == len(data):
            return data[start:line_end]
        end = line_end + 1


class _ImportGraph:
    """Which Python files of a change set a file's bytes import, and which of their names."""

    def __init__(self, package: Path, change_set: dict[Path, bytes | None]):
        self.package = package
        self.files = {name: path for path in change_set if (name := self.module_name(path))}
        self.modules_in: dict[str, set[Path]] = defaultdict(set)  # package name -> its module files in the set
        for name, path in self.files.items():
            if path.name != "__init__.py":
                self.modules_in[name.rpartition(".")[0]].add(path)

    def module_name(self, path: Path) -> str | None:
        """``ultralytics.nn.tasks`` for ``<package>/nn/tasks.py``; None for files that are not modules."""
        if path.suffix != ".py" or self.package not in path.parents:
            return None
        parts = [self.package.name, *path.relative_to(self.package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts) if all(part.isidentifier() for part in parts) else None

    def imports(self, path: Path, data: bytes | None) -> dict[Path, set[str]]:
        """File of the change set -> the names ``data`` (the bytes of ``path``) imports from it."""
        name = self.module_name(path)
        if name is None or data is None:
            return {}
        is_package = path.name == "__init__.py"
        wanted: dict[str, set[str]] = defaultdict(set)  # module name -> names
        if is_package:
            wanted[name].add(ANYTHING)  # an __init__ may import any module of its package
        for node in import_statements(data):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    wanted[alias.name].add(ANYTHING)
            elif isinstance(node, ast.ImportFrom):
                self._add_from(node, name if is_package else name.rpartition(".")[0], wanted)
        files: dict[Path, set[str]] = defaultdict(set)
        for module, names in wanted.items():
            for file in self._files_of(module) - {path}:
                files[file] |= names
        return files

    def _add_from(self, node: ast.ImportFrom, own_package: str, wanted: dict[str, set[str]]) -> None:
        """``from base import a, b``: the module ``base.a`` where it is a file, else the name ``a`` of ``base``."""
        if node.level:
            parts = own_package.split(".")
            if node.level - 1 >= len(parts):
                return
            base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.files:
                wanted[submodule].add(ANYTHING)
            else:
                wanted[base].add(alias.name)  # "*" is ANYTHING

    def _files_of(self, module: str) -> set[Path]:
        """A module's file; for a package, its ``__init__`` and every module in it."""
        files = set(self.modules_in.get(module, ()))
        if module in self.files:
            files.add(self.files[module])
        return files
