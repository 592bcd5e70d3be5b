"""Shared shape of the two parse_model branches inserted before the final ``else: c2 = ch[f]``."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine.cst import code, template_statement
from bbpatch.engine.edits.base import Edit, assign_to, replace_statement

FINAL_ELSE = m.Else(body=m.IndentedBlock(body=[assign_to("c2", m.Subscript(value=m.Name("ch")))]))


def module_type_chain(block) -> list[cst.If]:
    """The ``if m in base_modules: ... elif ... else: c2 = ch[f]`` chain, head first; [] if absent."""
    for statement in block.node.body:
        chain = []
        node = statement
        while isinstance(node, cst.If):
            chain.append(node)
            node = node.orelse
        if chain and m.matches(node, FINAL_ELSE):
            return chain
    return []


@dataclass(frozen=True)
class InsertBranch(Edit):
    template: str = ""

    def _is_inserted(self, node: cst.If) -> bool:
        return code(node.test) == code(template_statement(self.template).test)

    def anchors(self, module):
        found = []
        for block in self.scope(module):
            chain = module_type_chain(block)
            if chain and not any(self._is_inserted(node) for node in chain):
                found.append((block, chain[-1]))
        return found

    def applied(self, module):
        found = []
        for block in self.scope(module):
            chain = module_type_chain(block)
            found += [(block, previous) for previous, node in zip(chain, chain[1:]) if self._is_inserted(node)]
        return found

    def apply_at(self, module, block, last):
        branch = template_statement(self.template).with_changes(orelse=last.orelse)
        return _replace_in_chain(module, block, last, last.with_changes(orelse=branch))

    def revert_at(self, module, block, previous):
        return _replace_in_chain(module, block, previous, previous.with_changes(orelse=previous.orelse.orelse))


def _replace_in_chain(module, block, old: cst.If, new: cst.If):
    chain = module_type_chain(block)
    index = next(i for i, node in enumerate(chain) if node is old)
    for parent in reversed(chain[:index]):
        new = parent.with_changes(orelse=new)
    return replace_statement(module, block, chain[0], new)
