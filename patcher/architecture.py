"""The rooms of bbpatch and the one-way rule between them, checked from the code's own imports (``make lint``).

Each room is a subpackage (or a module) that owns one thing. A room may import itself, the rooms it names in
``may_import`` and the package root (``__version__``); nothing else. Every import counts, including one inside
a function, and no module may import itself back through others (no circles). ``python -m bbpatch.architecture``
prints what breaks the rule and exits 1; ``--diagram`` prints the rooms as docs/architecture.md shows them.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "bbpatch"
SOURCES = {"patcher": PACKAGE, "modules": f"{PACKAGE}.modules"}  # source folder -> package it installs as


@dataclass(frozen=True)
class Room:
    name: str
    owns: str
    may_import: tuple[str, ...] = ()


# Lowest first: a room only ever imports rooms above it in this list.
ROOMS = (
    Room("modules", "the nn.Module classes YAMLs build, run inside the user's ultralytics: never import the tool"),
    Room("engine", "the edits as pure functions of source bytes: tree layout, CST helpers, the edit registry"),
    Room("models", "what bbpatch knows of backbones and YAMLs: catalog, roles, YAML derivation", ("engine",)),
    Room("disk", "reading a tree and bbpatch's records; the one way to write (transaction)", ("engine", "models")),
    Room("adopt", "taking over a tree patched by hand with the blog recipe", ("engine", "models", "disk")),
    Room("patching", "apply, revert and status: plan from the engine, write through the disk", ("adopt", "disk")),
    Room("hook", "zero-write mode: the import hook and its code cache", ("engine", "models")),
    Room("git", "the merge driver, resolve, git-setup and the post-merge hook", ("engine", "disk", "patching")),
    Room(
        "yamlcheck",
        "bbpatch yaml's promise: a derived YAML is built in its tree before it is written",
        ("hook", "models"),
    ),
    Room("verify", "the CI gate: static checks here, runtime checks in worker processes", ("patching", "hook")),
    Room("api", "the library's one face", ("adopt", "disk", "engine", "patching")),
    Room(
        "cli",
        "the bbpatch command, one thin module per command group",
        ("api", "benchmarks", "compare", "git", "hook", "models", "verify", "yamlcheck"),
    ),
    Room(
        "benchmarks",
        "make bench and bbpatch bench: figures measured side by side",
        ("api", "hook", "modules", "verify"),
    ),
    Room(
        "releases",
        "make sweep, sweep-adopt, sweep-timm, upstream-tests: releases, recipe trees, timm families, upstream tests",
        ("api", "models", "verify"),
    ),
    Room(
        "compare",
        "bbpatch compare: candidates trained with one recipe, mAP beside latency",
        ("benchmarks", "engine", "models", "verify"),
    ),
    Room("demo", "make demo, the README's main job", ("api", "models")),
    Room("architecture", "this map, and the check of it"),
    Room("__main__", "python -m bbpatch", ("cli",)),
)
ROOM_NAMES = {room.name for room in ROOMS}
SHARED = {PACKAGE, f"{PACKAGE}._moved"}  # the root (its __version__) and the 0.3 import paths: anyone may use them


def reachable(room: str) -> set[str]:
    """The rooms ``room`` may import: those it names, and theirs in turn (a room may use what its rooms use)."""
    by_name = {r.name: r for r in ROOMS}
    seen, todo = set(), [room]
    while todo:
        for name in by_name[todo.pop()].may_import:
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def module_name(path: Path, source: Path, package: str) -> str:
    parts = [*path.relative_to(source).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOM_NAMES else None


def imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The bbpatch modules one import statement names (``from pkg import name`` names ``pkg.name`` if a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != PACKAGE:
        return []
    if node.module is None:  # "from . import name": a submodule, even one written at run time (modules._adopted)
        return [f"{target}.{alias.name}" for alias in node.names]
    submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known]
    return submodules if len(submodules) == len(node.names) else [target, *submodules]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every bbpatch module under ``root`` (the checkout), with the bbpatch modules it imports anywhere in it."""
    files = {}
    for folder, package in SOURCES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if all(part.isidentifier() for part in parts):  # what is importable: not .cache/, not a stray copy
                files[module_name(path, root / folder, package)] = path
    known = set(files)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_bytes(), str(path))
        is_package = path.name == "__init__.py"
        edges = {t for node in ast.walk(tree) for t in imported(node, module, is_package, known)}
        graph[module] = {t for t in edges if t in known and t != module}
    return graph


def back_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        room = room_of(module)
        if module in SHARED:
            allowed_targets = SHARED
        elif room is None:
            problems.append(
                f"{module}: in no room; move it into one, or add a room to ROOMS in bbpatch/architecture.py"
            )
            continue
        else:
            allowed_targets = set() if room == "modules" else {PACKAGE}
        allowed = reachable(room) | {room} if room else set()
        for target in sorted(targets):
            if target not in allowed_targets and room_of(target) not in allowed:
                problems.append(f"{module} imports {target}: room '{room}' may not import room '{room_of(target)}'")
    return problems


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Each import circle once, as the chain of modules that closes it."""
    found, state, stack = [], {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                chain = stack[stack.index(target) :] + [target]
                found.append("import circle: " + " -> ".join(chain))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def check(root: Path) -> list[str]:
    graph = import_graph(root)
    return back_imports(graph) + circles(graph)


def diagram() -> str:
    """The rooms, lowest last, each with what it may import and what it owns."""
    width = max(len(room.name) for room in ROOMS)
    uses = {room.name: ", ".join(room.may_import) or "-" for room in ROOMS}
    uses_width = max(len(text) for text in uses.values())
    return "\n".join(f"{r.name:<{width}} -> {uses[r.name]:<{uses_width}}  {r.owns}" for r in reversed(ROOMS))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--diagram"]:
        print(diagram())
        return 0
    root = Path(argv[0] if argv else ".")
    if not (root / "patcher").is_dir():
        print(f"{root.resolve()}: no patcher/ here; run it in a bbpatch checkout")
        return 2
    problems = check(root)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"architecture: {len(import_graph(root))} modules, every import runs one way, no circles")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
