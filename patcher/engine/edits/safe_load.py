"""11. Restricted checkpoint loading (``_SafeLoad``, 8.4.100+) allows module classes from the Addmodules package.

Both names of bbpatch's package are allowed: ``ultralytics.nn.Addmodules`` (an applied tree, the import hook) and
``ultralytics.nn.Addmodules.bbpatch`` (a tree adopted from the blog recipe; ``bbpatch.modules`` gives a plain tree
that name too), so a checkpoint trained in either kind of tree loads in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine.cst import functions, template_expression
from bbpatch.engine.edits.base import (
    TASKS,
    AnchorMissing,
    Edit,
    InsertStatement,
    function_body,
    replace_inside,
    single_statement,
)

ADDMODULES = "ultralytics.nn.Addmodules"
ADOPTED_PACKAGE = f"{ADDMODULES}.bbpatch"
ALLOWED = (ADDMODULES, ADOPTED_PACKAGE)  # what the edit adds to a package set, in this order


def _strings(node: cst.Set) -> set[str]:
    return {e.value.evaluated_value for e in node.elements if isinstance(e.value, cst.SimpleString)}


_last_search: list = [None, []]  # (block node, its sets): status, anchors and applied ask about one block in a row


def allowed_parent_sets(block) -> list[cst.Set]:
    """Sets of package names that allow classes from their subpackages, e.g. {"torch.nn.modules", ...}."""
    if _last_search[0] is not block.node:  # a whole-function search: ~5 ms, asked four times per apply otherwise
        _last_search[:] = [
            block.node,
            [
                node
                for node in m.findall(block.node, m.Set())
                if {"torch.nn.modules", "ultralytics.nn.modules"} <= _strings(node)
                and "ultralytics.nn.tasks" not in _strings(node)
            ],
        ]
    return _last_search[1]


# 8.4.100 builds its allow-list once by scanning packages: `_scan(ul_tasks)` gets a sibling.
SCAN_ADDMODULES = InsertStatement(
    name="safe_load",
    file=TASKS,
    summary="",
    scope=function_body("_SafeLoad", "_build"),
    where="_SafeLoad._build",
    expected="'_scan(ul_tasks)'",
    template="safe_load_scan",
    anchor=single_statement(m.Expr(m.Call(func=m.Name("_scan"), args=[m.Arg(m.Name("ul_tasks"))]))),
)


@dataclass(frozen=True)
class AllowAddmodules(Edit):
    """Later releases allow classes by parent package on demand: the package set gets one more name."""

    def anchors(self, module):
        blocks = self.scope(module)
        sets = [(b, s) for b in blocks for s in allowed_parent_sets(b) if ADOPTED_PACKAGE not in _strings(s)]
        return sets + SCAN_ADDMODULES.anchors(module)

    def applied(self, module):
        sets = [(b, s) for b in self.scope(module) for s in allowed_parent_sets(b) if ADOPTED_PACKAGE in _strings(s)]
        return sets + SCAN_ADDMODULES.applied(module)

    def status(self, module):
        status = super().status(module)
        has_safe_load = any(path[0] == "_SafeLoad" for path, _ in functions(module))
        return "unsupported" if status == "n/a" and has_safe_load else status

    def apply_with_status(self, module):
        if self.status(module) == "unsupported":
            raise AnchorMissing(self.file, self.where, self.expected)
        return super().apply_with_status(module)

    def apply_at(self, module, block, node):
        if not isinstance(node, cst.Set):
            return SCAN_ADDMODULES.apply_at(module, block, node)

        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        templates = dict(zip(ALLOWED, ("safe_load", "safe_load_adopted")))
        added = [cst.Element(template_expression(templates[name])) for name in ALLOWED if name not in _strings(node)]
        elements = [*node.elements[:-1], node.elements[-1].with_changes(comma=comma), *added]
        elements[:-1] = [e.with_changes(comma=comma) for e in elements[:-1]]
        elements[-1] = elements[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return replace_inside(module, block, node, node.with_changes(elements=elements))

    def revert_at(self, module, block, node):
        if not isinstance(node, cst.Set):
            return SCAN_ADDMODULES.revert_at(module, block, node)
        kept = [
            e
            for e in node.elements
            if not (isinstance(e.value, cst.SimpleString) and e.value.evaluated_value in ALLOWED)
        ]
        kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return replace_inside(module, block, node, node.with_changes(elements=kept))


EDIT = AllowAddmodules(
    name="safe_load",
    file=TASKS,
    summary="_SafeLoad accepts nn.Module classes from ultralytics.nn.Addmodules (and its adopted name, .bbpatch)",
    scope=function_body("_SafeLoad", "loading"),
    where="_SafeLoad",
    expected="allow-list to extend ('_scan(ul_tasks)' in _build, or the package set in loading)",
    optional=True,  # releases before 8.4.100 have no restricted loading
)
