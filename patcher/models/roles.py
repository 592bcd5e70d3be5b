"""The role a module class declares (``bbpatch_role = "backbone"``), read from its source without importing it."""

from __future__ import annotations

import ast
from functools import lru_cache


def declared_role(node: ast.ClassDef):
    for statement in node.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            if any(isinstance(t, ast.Name) and t.id == "bbpatch_role" for t in statement.targets):
                return statement.value.value
    return None


@lru_cache(maxsize=1)
def shipped_names() -> frozenset:
    """The classes bbpatch's package exports, read without importing it (the catalog and bbpatch_role lines)."""
    from bbpatch.models import catalog

    names = set(catalog.BACKBONES)
    for file in catalog.package_dir("bbpatch.modules").glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef) and declared_role(node):
                names.add(node.name)
    return frozenset(names)
