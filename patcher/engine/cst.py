"""Small libcst helpers shared by the edits: templates, function lookup, statement wrapping."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Iterator

import libcst as cst

import bbpatch.engine.matchers as m

PLACEHOLDER = "ORIGINAL"  # in a wrapping template, stands for the statement being wrapped
_EMPTY = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


@functools.lru_cache(maxsize=None)
def template(name: str) -> tuple[cst.BaseStatement, ...]:
    """The statements of ``templates/edits/<name>.py``, without the header comment."""
    text = resources.files("bbpatch.templates").joinpath("edits", f"{name}.py").read_text(encoding="utf-8")
    body = cst.parse_module(text).body
    return (body[0].with_changes(leading_lines=()), *body[1:])


def template_statement(name: str) -> cst.BaseStatement:
    (statement,) = template(name)
    return statement


def template_expression(name: str) -> cst.BaseExpression:
    statement = template_statement(name)
    return statement.body[0].value


def is_placeholder(statement: cst.CSTNode) -> bool:
    return m.matches(statement, m.SimpleStatementLine(body=[m.Expr(m.Name(PLACEHOLDER))]))


def wrap(statement: cst.BaseStatement, template_name: str) -> cst.If:
    """Put ``statement`` in the template's placeholder slot; its comments above move to the ``if``."""
    wrapper = template_statement(template_name)
    placeholder = next(s for s in _all_statements(wrapper) if is_placeholder(s))
    wrapped = wrapper.deep_replace(placeholder, statement.with_changes(leading_lines=()))
    return wrapped.with_changes(leading_lines=statement.leading_lines)


def unwrap(wrapper: cst.If, original: m.BaseMatcherNode) -> cst.BaseStatement:
    """Inverse of :func:`wrap`: the wrapped statement, with the ``if``'s comments back above it."""
    statement = next(s for s in _all_statements(wrapper) if m.matches(s, original))
    return statement.with_changes(leading_lines=wrapper.leading_lines)


def _all_statements(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return iter(m.findall(node, m.SimpleStatementLine() | m.If() | m.For()))


def same_code(a: cst.CSTNode, b: cst.CSTNode) -> bool:
    if type(a) is not type(b) or _first_small_statement_type(a) is not _first_small_statement_type(b):
        return False  # cheap rejection before rendering code
    return code(a).strip() == code(b).strip()


def _first_small_statement_type(node: cst.CSTNode) -> type | None:
    return type(node.body[0]) if isinstance(node, cst.SimpleStatementLine) and node.body else None


# --- functions and methods -------------------------------------------------------------------------------------------

FunctionPath = tuple  # ("parse_model",) or ("DetectionModel", "__init__")


def functions(module: cst.Module) -> Iterator[tuple[FunctionPath, cst.FunctionDef]]:
    """Top-level functions and methods of top-level classes, cheaply (no tree traversal)."""
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef):
            yield (statement.name.value,), statement
        elif isinstance(statement, cst.ClassDef):
            for member in statement.body.body:
                if isinstance(member, cst.FunctionDef):
                    yield (statement.name.value, member.name.value), member


def find_function(module: cst.Module, path: FunctionPath) -> cst.FunctionDef | None:
    return next((fn for p, fn in functions(module) if p == path), None)


def replace_function(module: cst.Module, old: cst.FunctionDef, new: cst.FunctionDef) -> cst.Module:
    def swap(body):
        return [new if statement is old else statement for statement in body]

    for statement in module.body:
        if statement is old:
            return module.with_changes(body=swap(module.body))
        if isinstance(statement, cst.ClassDef) and any(member is old for member in statement.body.body):
            cls = statement.with_changes(body=statement.body.with_changes(body=swap(statement.body.body)))
            return module.with_changes(body=[cls if s is statement else s for s in module.body])
    raise LookupError("function is not part of this module")


def swap_child(parent: cst.CSTNode, old: cst.CSTNode, new: cst.CSTNode) -> cst.CSTNode:
    """``parent`` with its direct child ``old`` (a field, or an item of a sequence field) replaced by ``new``."""
    for name in parent.__dataclass_fields__:
        value = getattr(parent, name)
        if value is old:
            return parent.with_changes(**{name: new})
        if isinstance(value, (list, tuple)) and any(item is old for item in value):
            return parent.with_changes(**{name: [new if item is old else item for item in value]})
    raise LookupError(f"{type(old).__name__} is not a direct child of {type(parent).__name__}")


def rebuild(path: tuple, new: cst.CSTNode) -> cst.CSTNode:
    """Replace ``path[-1]`` by ``new`` and rebuild its ancestors ``path[:-1]`` (root first); returns the new root."""
    for parent, old in zip(reversed(path[:-1]), reversed(path[1:])):
        new = swap_child(parent, old, new)
    return new


CHILD_BLOCKS = ("body", "orelse", "handlers", "finalbody")


def nested_blocks(node: cst.CSTNode, path: tuple = ()) -> Iterator[tuple[tuple, cst.BaseSuite]]:
    """Every indented block under a compound statement, with the chain of nodes leading to it (statements only)."""
    path = (*path, node)
    for name in CHILD_BLOCKS:
        child = getattr(node, name, None)
        if child is None:
            continue
        for item in child if isinstance(child, (list, tuple)) else (child,):
            if isinstance(item, cst.IndentedBlock):
                yield path, item
                for statement in item.body:
                    if isinstance(statement, cst.BaseCompoundStatement):
                        yield from nested_blocks(statement, (*path, item))
            elif isinstance(item, (cst.If, cst.Else, cst.ExceptHandler, cst.Finally, cst.ExceptStarHandler)):
                yield from nested_blocks(item, path)


class StatementLines:
    """The line each node starts on in ``module``, resolved one top-level statement at a time: positions for the
    whole of tasks.py cost seconds, for the statement a finding is in a fraction of that."""

    def __init__(self, module: cst.Module):
        self.module = module
        self.offsets, newlines = [], len(module.header)
        for statement in module.body:
            self.offsets.append(newlines)
            newlines += code(statement).count("\n")
        self.resolved: dict[int, dict] = {}

    def line(self, index: int, node: cst.CSTNode) -> int:
        """``node``'s line, ``node`` being in ``module.body[index]``; 0 when it is not there."""
        if index not in self.resolved:
            from libcst.metadata import MetadataWrapper, PositionProvider

            alone = self.module.with_changes(body=[self.module.body[index]], header=(), footer=())
            positions = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider)
            self.resolved[index] = {n: place.start.line + self.offsets[index] for n, place in positions.items()}
        return self.resolved[index].get(node, 0)
