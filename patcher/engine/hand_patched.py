"""Recognising the blog recipe's hand edits in tasks.py by what they do, however they are spelled.

The recipe (and its many community copies) adds a second backbone branch to parse_model's type dispatch that
instantiates the layer and takes its channel list (``m = m(*args)``, ``c2 = m.width_list`` or ``m.channel``,
``backbone = True``), lets ``ch`` grow by a list, shifts layer indices by 4 and makes the forward loops branch
on a ``backbone`` attribute. Each of these is a CST pattern below, so a copy with its own names in the ``elif``
set, another import, other quotes or other formatting is still recognised; text in comments and strings is not
evidence. Stock tasks.py (8.0.0 .. 8.4.190) shows none of them; a cheap byte scan skips parsing when no
candidate is present, which is the common case.
"""

from __future__ import annotations

import re

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine.cst import StatementLines

CANDIDATES = re.compile(
    rb"Addmodules|width_list|\bbackbone\s*=\s*True|\bm\s*=\s*m\s*\(|\bc2\s*=\s*m\s*\.|\bch\s*\.\s*(?:extend|insert)\b"
    rb"|\bch\s*\+=|\bch\s*\[[^\]\n]*\]\s*=[^=]|isinstance\(\s*c2\s*,\s*list|\bi\s*\+\s*4\b"
    rb"|(?:hasattr|getattr)\(\s*\w+\s*,\s*['\"]backbone['\"]|\.get\(\s*['\"]backbone['\"]|\.backbone\b|bbpatch_"
)


def _assigns(name: str, value: m.BaseMatcherNode) -> m.BaseMatcherNode:
    return m.Assign(targets=[m.AssignTarget(target=m.Name(name))], value=value)


def _is(kind: type) -> m.BaseMatcherNode:
    return m.MatchIfTrue(lambda node: isinstance(node, kind))


def _string(text: str) -> m.BaseMatcherNode:
    return m.MatchIfTrue(lambda node: isinstance(node, cst.SimpleString) and node.evaluated_value == text)


def _grows_ch(node: cst.CSTNode) -> bool:
    """``ch += ...`` or ``ch[...] = ...``: ch written as a list rather than appended one channel count."""
    if isinstance(node, cst.AugAssign):
        return m.matches(node.target, m.Name("ch"))
    return isinstance(node, cst.Assign) and any(
        m.matches(target.target, m.Subscript(value=m.Name("ch"))) for target in node.targets
    )


def imports_addmodules(node: cst.CSTNode) -> bool:
    if isinstance(node, cst.ImportFrom) and node.module is not None:
        return "Addmodules" in cst.Module([]).code_for_node(node.module)
    if isinstance(node, cst.Import):
        return any("Addmodules" in cst.Module([]).code_for_node(alias.name) for alias in node.names)
    return False


# (pattern, where: "parse_model" or "anywhere", what it means)
SIGNS = (
    (m.MatchIfTrue(imports_addmodules), "anywhere", "imports an Addmodules package"),
    (
        _assigns("m", m.Call(func=m.Name("m"))),
        "parse_model",
        "parse_model instantiates the layer in its type dispatch (a second backbone branch)",
    ),
    (_assigns("backbone", m.Name("True")), "parse_model", "parse_model sets a backbone flag"),
    (
        _assigns("c2", m.Attribute(value=m.Name("m"))),
        "parse_model",
        "parse_model takes c2 from the layer instance (a channel list)",
    ),
    (
        m.Call(func=m.Attribute(value=m.Name("ch"), attr=m.Name("extend") | m.Name("insert"))),
        "parse_model",
        "parse_model grows ch by a list",
    ),
    (m.MatchIfTrue(_grows_ch), "parse_model", "parse_model grows ch by a list"),
    (
        m.Call(func=m.Name("isinstance"), args=[m.Arg(value=m.Name("c2")), m.Arg(value=m.Name("list"))]),
        "parse_model",
        "parse_model treats c2 as a channel list",
    ),
    (m.Attribute(attr=m.Name("width_list")), "anywhere", "reads width_list"),
    (
        m.BinaryOperation(left=m.Name("i"), operator=_is(cst.Add), right=m.Integer("4")),
        "anywhere",
        "shifts layer indices by 4",
    ),
    (
        m.Call(
            func=m.Name("hasattr") | m.Name("getattr"),
            args=[m.DoNotCare(), m.Arg(value=_string("backbone")), m.ZeroOrMore()],
        )
        | m.Call(func=m.Attribute(attr=m.Name("get")), args=[m.Arg(value=_string("backbone")), m.ZeroOrMore()])
        | m.Attribute(attr=m.Name("backbone")),
        "anywhere",
        "checks a backbone attribute on layers",
    ),
    (m.Name(m.MatchIfTrue(lambda name: name.startswith("bbpatch_"))), "anywhere", "calls bbpatch helpers"),
)


SIGN_NODES = (
    cst.Import,
    cst.ImportFrom,
    cst.Assign,
    cst.AugAssign,
    cst.Call,
    cst.Attribute,
    cst.BinaryOperation,
    cst.Name,
)


def _dispatched_names(node: cst.CSTNode) -> list[str]:
    """The names a type-dispatch test compares ``m`` with: ``m in {A, B}`` (set, tuple, list), ``m is A``."""
    if not (isinstance(node, cst.Comparison) and m.matches(node.left, m.Name("m")) and len(node.comparisons) == 1):
        return []
    target = node.comparisons[0]
    if isinstance(target.operator, cst.Is):
        return [target.comparator.value] if isinstance(target.comparator, cst.Name) else []
    container = target.comparator
    if isinstance(container, cst.Call) and m.matches(container.func, m.Name("frozenset")) and container.args:
        container = container.args[0].value  # ``m in frozenset({A, B})``, as releases from 8.3 write the dispatch
    if isinstance(target.operator, cst.In) and isinstance(container, (cst.Set, cst.Tuple, cst.List)):
        return [e.value.value for e in container.elements if isinstance(e.value, cst.Name)]
    return []


class _Signs(cst.CSTVisitor):
    def __init__(self, shipped: frozenset = frozenset()):
        self.depth_in_parse_model = 0
        self.shipped = shipped
        self.found: dict[str, tuple] = {}  # meaning -> (the top-level statement it is in, the first node showing it)
        self.statement = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value == "parse_model" or self.depth_in_parse_model:
            self.depth_in_parse_model += 1

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self.depth_in_parse_model:
            self.depth_in_parse_model -= 1

    def on_visit(self, node: cst.CSTNode) -> bool:
        super().on_visit(node)
        if self.shipped and self.depth_in_parse_model and isinstance(node, cst.If):
            names = [name for name in _dispatched_names(node.test) if name in self.shipped]
            if names:  # bbpatch's branch comes last in the dispatch: this one would take these names from it
                meaning = (
                    f"parse_model has a branch of its own for {', '.join(names)}, a class the bbpatch package ships "
                    "(bbpatch's branch would never see it)"
                )
                self.found.setdefault(meaning, (self.statement, node))
        if not isinstance(node, SIGN_NODES):
            return True
        for pattern, where, meaning in SIGNS:
            if meaning in self.found or (where == "parse_model" and not self.depth_in_parse_model):
                continue
            if m.matches(node, pattern):
                self.found[meaning] = (self.statement, node)
        return not isinstance(node, (cst.Import, cst.ImportFrom))  # ultralytics.nn.backbone.x is no attribute check


def evidence(tasks: bytes, shipped: frozenset = frozenset()) -> list[str]:
    """What in ``tasks`` looks like the recipe's hand edits (or bbpatch's edits without a manifest), with lines;
    ``shipped``: the class names bbpatch's package exports (a hand-made branch for one of them is a hand edit)."""
    if not CANDIDATES.search(tasks) and not any(name.encode() in tasks for name in shipped):
        return []
    try:
        module = cst.parse_module(tasks)
    except (cst.ParserSyntaxError, SyntaxError, UnicodeDecodeError, LookupError):
        return []  # not Python: the parse that follows reports that clearly
    signs = _Signs(frozenset(shipped))
    for index, statement in enumerate(module.body):
        signs.statement = index
        statement.visit(signs)
    lines = StatementLines(module)
    return [f"tasks.py line {lines.line(index, node)}: {meaning}" for meaning, (index, node) in signs.found.items()]
