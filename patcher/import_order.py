"""The order a change set is written in, so that the tree imports at every instant between two writes.

A process killed between two writes leaves a half-written tree until the next bbpatch command rolls the journal
back, and what the user runs next is usually their training script, not bbpatch. So ``commit`` writes any change
set (apply, revert, a refresh, a rollback, whatever a later command commits) in import-safe order:

1. what a module will import is in place before the module that imports it. A package's modules count as
   imported by whatever imports the package, its own ``__init__`` included (an ``__init__`` may import every
   module beside it, as Addmodules' does). So the whole Addmodules package is written before ``nn/tasks.py``
   imports it, and ``utils/torch_utils.py`` before ``nn/tasks.py``, which imports it;
2. a module that stops importing another is rewritten before that other one changes;
3. deletions come last, a module before the modules it imported: revert rewrites ``tasks.py`` (which then no
   longer imports Addmodules) before the first Addmodules file goes.

Among files these rules leave free, new files (nothing imports them yet) come before changed ones, then the
change set's own order. Imports are read with ``ast`` from the bytes before and after, nothing is run. A cycle
of imports within one change set has no safe order: it is broken at its first file in that order.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path


def import_safe_order(package: Path, before: dict[Path, bytes | None], after: dict[Path, bytes | None]) -> list[Path]:
    """The paths of ``after`` (bytes: write, None: delete) in the order that keeps ``package`` importable."""
    graph = _ImportGraph(package, after)
    placed = [path for path, data in after.items() if data is not None]
    deleted = [path for path, data in after.items() if data is None]
    needs: dict[Path, set[Path]] = defaultdict(set)  # path -> paths written or deleted before it
    for path in placed:
        will_import, imported = graph.imports(path, after[path]), graph.imports(path, before.get(path))
        needs[path] |= will_import & set(placed)
        for released in (imported - will_import) & set(placed):
            needs[released].add(path)
    for path in deleted:
        for dependency in graph.imports(path, before.get(path)) & set(deleted):
            needs[dependency].add(path)
    position = {path: index for index, path in enumerate(after)}
    new_first = lambda path: (before.get(path) is not None, position[path])
    return _dependencies_first(placed, needs, new_first) + _dependencies_first(deleted, needs, position.get)


def _dependencies_first(paths: list[Path], needs: dict[Path, set[Path]], key) -> list[Path]:
    """A topological order of ``paths``, the smallest ``key`` first among those free to go; a cycle is broken at
    its smallest key."""
    waiting = {path: needs[path] & set(paths) for path in paths}
    order = []
    while waiting:
        free = [path for path, blockers in waiting.items() if not blockers] or list(waiting)
        chosen = min(free, key=key)
        order.append(chosen)
        del waiting[chosen]
        for blockers in waiting.values():
            blockers.discard(chosen)
    return order


class _ImportGraph:
    """Which Python files of a change set a file's bytes import."""

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

    def imports(self, path: Path, data: bytes | None) -> set[Path]:
        name = self.module_name(path)
        if name is None or data is None:
            return set()
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):  # not Python (a conflicted merge, bad bytes): nothing to order by
            return set()
        is_package = path.name == "__init__.py"
        targets = {name} if is_package else set()  # an __init__ may import any module of its package
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                targets |= self._imported_by_from(node, name if is_package else name.rpartition(".")[0])
        return {file for target in targets for file in self._files_of(target)} - {path}

    def _imported_by_from(self, node: ast.ImportFrom, own_package: str) -> set[str]:
        """``from base import a, b``: the modules ``base.a``, ``base.b`` where they are files, else ``base``."""
        if node.level:
            parts = own_package.split(".")
            if node.level - 1 >= len(parts):
                return set()
            base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        submodules = {f"{base}.{alias.name}" for alias in node.names} & set(self.files)
        return submodules if len(submodules) == len(node.names) else submodules | {base}

    def _files_of(self, module: str) -> set[Path]:
        """A module's file; for a package, its ``__init__`` and every module in it."""
        files = set(self.modules_in.get(module, ()))
        if module in self.files:
            files.add(self.files[module])
        return files
