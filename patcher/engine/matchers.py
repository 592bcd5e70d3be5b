"""Declarative CST patterns with the spelling of ``libcst.matchers`` (``m.Call(func=m.Name("x"))``, ``|``,
``m.ZeroOrMore()``, ``m.matches``, ``m.findall``), for the subset bbpatch uses.

Why not libcst.matchers itself: importing it takes ~0.7 s, more than parsing tasks.py, and apply/status
must stay close to the cost of parsing and printing the files they touch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import libcst as cst


class BaseMatcherNode:
    def matches(self, node: Any) -> bool:
        raise NotImplementedError

    def __or__(self, other: BaseMatcherNode) -> BaseMatcherNode:
        return OneOf(self, other)


class DoNotCare(BaseMatcherNode):
    def matches(self, node):
        return True


class ZeroOrMore(DoNotCare):
    """In a sequence pattern: any number of items."""


class OneOf(BaseMatcherNode):
    def __init__(self, *options: BaseMatcherNode):
        self.options = options

    def matches(self, node):
        return any(_match(option, node) for option in self.options)


class MatchIfTrue(BaseMatcherNode):
    def __init__(self, predicate: Callable[[Any], bool]):
        self.predicate = predicate

    def matches(self, node):
        return self.predicate(node)


class NodePattern(BaseMatcherNode):
    """Matches an instance of a libcst node class whose named fields match the given patterns."""

    node_class: type = cst.CSTNode

    def __init__(self, *positional, **fields):
        if positional:
            fields[dataclasses.fields(self.node_class)[0].name] = positional[0]
        self.fields = fields

    def matches(self, node):
        return isinstance(node, self.node_class) and all(_match(p, getattr(node, f)) for f, p in self.fields.items())


def _match(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, BaseMatcherNode):
        return pattern.matches(value)
    if isinstance(pattern, (list, tuple)):
        return isinstance(value, (list, tuple)) and _match_sequence(list(pattern), list(value))
    return pattern == value


def _match_sequence(patterns: list, values: list) -> bool:
    if not patterns:
        return not values
    head, rest = patterns[0], patterns[1:]
    if isinstance(head, ZeroOrMore):
        return any(_match_sequence(rest, values[i:]) for i in range(len(values) + 1))
    return bool(values) and _match(head, values[0]) and _match_sequence(rest, values[1:])


def _pattern_class(name: str) -> type:
    return type(name, (NodePattern,), {"node_class": getattr(cst, name)})


_NODES = (
    "Add Arg Assign AssignTarget Attribute AugAssign BinaryOperation Call Comparison Dot Element Else Expr For "
    "FormattedString FormattedStringExpression GeneratorExp If IfExp "
    "ImportFrom IndentedBlock Integer Modulo Name Set SimpleStatementLine Subscript Tuple"
).split()
globals().update({name: _pattern_class(name) for name in _NODES})


def matches(node: Any, pattern: BaseMatcherNode) -> bool:
    return _match(pattern, node)


class _Collector(cst.CSTVisitor):
    def __init__(self, pattern: BaseMatcherNode):
        self.pattern, self.found = pattern, []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.pattern.matches(node):
            self.found.append(node)
        return True


def findall(tree: cst.CSTNode, pattern: BaseMatcherNode) -> list[cst.CSTNode]:
    """Every node in ``tree`` (itself included) that matches, in document order."""
    collector = _Collector(pattern)
    tree.visit(collector)
    return collector.found
