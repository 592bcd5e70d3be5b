"""1. tasks.py imports the Addmodules package, so parse_model's name lookup finds backbones and blocks.

In a tree adopted from the blog recipe (``bbpatch adopt``), ``nn/Addmodules`` is the user's own package and tasks.py
already imports it: bbpatch's package is then ``nn/Addmodules/bbpatch`` and the import names it. Which form to
insert is read from the file itself (it imports an Addmodules package of its own, or not), so the merge driver,
which sees one file and no tree, chooses as apply and adopt do.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine import hand_patched
from bbpatch.engine.cst import same_code, template_statement
from bbpatch.engine.edits.base import TASKS, InsertStatement, module_level, replace_block, single_statement

MODULES_IMPORT = single_statement(
    m.ImportFrom(
        module=m.Attribute(value=m.Attribute(value=m.Name("ultralytics"), attr=m.Name("nn")), attr=m.Name("modules"))
    )
    | m.ImportFrom(relative=[m.Dot()], module=m.Name("modules"))  # ``from .modules import (...)``, as forks have it
)
ADOPTED_TEMPLATE = "import_adopted"


@dataclass(frozen=True)
class ImportModules(InsertStatement):
    def _is_inserted(self, statement) -> bool:
        return any(same_code(statement, template_statement(name)) for name in (self.template, ADOPTED_TEMPLATE))

    def imports_users_package(self, module: cst.Module) -> bool:
        """tasks.py imports an Addmodules package that is not bbpatch's: the recipe's, kept by adopt."""
        return any(
            isinstance(statement, cst.SimpleStatementLine)
            and not self._is_inserted(statement)
            and any(hand_patched.imports_addmodules(node) for node in statement.body)
            for statement in module.body
        )

    def apply_at(self, module, block, anchor):
        template = ADOPTED_TEMPLATE if self.imports_users_package(module) else self.template
        body = list(block.node.body)
        index = next(i for i, s in enumerate(body) if s is anchor) + 1
        body.insert(index, template_statement(template))
        return replace_block(module, block, body)


EDIT = ImportModules(
    name="import_addmodules",
    file=TASKS,
    summary="import ultralytics.nn.Addmodules (nn.Addmodules.bbpatch in an adopted tree) after the nn.modules import",
    scope=module_level,
    where="the module",
    expected="'from ultralytics.nn.modules import (...)' (or 'from .modules import (...)') statement",
    template="import_addmodules",
    anchor=MODULES_IMPORT,
)


def users_import_lines(module: cst.Module) -> set[str]:
    """In an adopted tasks.py, the lines of the user's own Addmodules imports: theirs, not bbpatch's leftovers."""
    if not any(same_code(s, template_statement(ADOPTED_TEMPLATE)) for s in module.body):
        return set()
    return {
        line.strip()
        for statement in module.body
        if isinstance(statement, cst.SimpleStatementLine)
        and not EDIT._is_inserted(statement)
        and any(hand_patched.imports_addmodules(node) for node in statement.body)
        for line in cst.Module([]).code_for_node(statement).splitlines()
    }
