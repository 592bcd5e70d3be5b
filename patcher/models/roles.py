"""The role a module class declares (``bbpatch_role = "backbone"``), read from its source without importing it."""

from __future__ import annotations

import ast


def declared_role(node: ast.ClassDef):
    for statement in node.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            if any(isinstance(t, ast.Name) and t.id == "bbpatch_role" for t in statement.targets):
                return statement.value.value
    return None
