"""5c. Layers after a backbone are numbered from 5: ``i + 4`` in the attached index, save list and printed table."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine.cst import code, template_expression
from bbpatch.engine.edits.base import TASKS, Edit, layer_loop, replace_inside, single_statement

# m_.i, m_.f, m_.type = i, f, t  ->  the first value
ATTACH_INDEX = single_statement(
    m.Assign(targets=[m.AssignTarget(m.Tuple(elements=[m.Element(m.Attribute(attr=m.Name("i"))), m.ZeroOrMore()]))])
)
# save.extend(x % i for x in ...)  ->  the right operand
SAVE_LIST = single_statement(
    m.Expr(m.Call(func=m.Attribute(value=m.Name("save"), attr=m.Name("extend")), args=[m.Arg(m.GeneratorExp())]))
)


# Each site function returns (statement of the loop body, site) pairs: the edit rewrites that statement only.


def attach_sites(block) -> list[tuple]:
    """The ``i`` attached as the layer index."""
    return [(s, s.body[0].value.elements[0].value) for s in block.node.body if m.matches(s, ATTACH_INDEX)]


def modulo_sites(block) -> list[tuple]:
    """The ``i`` of ``x % i`` in the save list."""
    elements = [(s, s.body[0].value.args[0].value.elt) for s in block.node.body if m.matches(s, SAVE_LIST)]
    return [(s, e.right) for s, e in elements if m.matches(e, m.BinaryOperation(operator=m.Modulo()))]


# if verbose: LOGGER.info(f"{i:>3}{f!s:>20}...")  ->  the index printed in the layer table
VERBOSE = m.If(test=m.Name("verbose"))
TABLE_ROW = single_statement(m.Expr(m.Call(func=m.Attribute(attr=m.Name("info")), args=[m.Arg(m.FormattedString())])))


def printed_sites(block) -> list[tuple]:
    """The index printed first in each row of parse_model's layer table, so users read the numbers YAMLs use."""
    rows = [(s, r) for s in block.node.body if m.matches(s, VERBOSE) for r in s.body.body if m.matches(r, TABLE_ROW)]
    sites = []
    for statement, row in rows:
        fields = [p for p in row.body[0].value.args[0].value.parts if isinstance(p, cst.FormattedStringExpression)]
        if fields:
            sites.append((statement, fields[0].expression))
    return sites


def index_sites(block) -> list[tuple]:
    return attach_sites(block) + modulo_sites(block) + printed_sites(block)


def statement_of(block, site) -> cst.CSTNode:
    return next(statement for statement, found in index_sites(block) if found is site)


def shifted_index(parenthesized: bool) -> cst.BaseExpression:
    expression = template_expression("layer_index")
    if parenthesized:
        expression = expression.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expression


@dataclass(frozen=True)
class ShiftLayerIndex(Edit):
    def _is_shifted(self, node) -> bool:
        return isinstance(node, cst.IfExp) and code(node.with_changes(lpar=(), rpar=())) == code(
            template_expression("layer_index")
        )

    def anchors(self, module):
        return [(b, n) for b in self.scope(module) for _, n in index_sites(b) if m.matches(n, m.Name("i"))]

    def applied(self, module):
        return [(b, n) for b in self.scope(module) for _, n in index_sites(b) if self._is_shifted(n)]

    def apply_at(self, module, block, name):
        in_modulo = any(name is site for _, site in modulo_sites(block))
        shifted = shifted_index(parenthesized=in_modulo)
        return replace_inside(module, block, name, shifted, statement_of(block, name))

    def revert_at(self, module, block, shifted):
        return replace_inside(module, block, shifted, cst.Name("i"), statement_of(block, shifted))


EDIT = ShiftLayerIndex(
    name="layer_index",
    file=TASKS,
    summary="i + 4 if backbone else i in the attached layer index, the save list and the printed layer table",
    scope=layer_loop,
    where="parse_model",
    expected="'m_.i, m_.f, m_.type = i, f, t' and 'save.extend(x % i ...)' statements",
)
