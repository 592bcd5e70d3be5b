"""1. tasks.py imports the Addmodules package, so parse_model's name lookup finds backbones and blocks."""

import bbpatch.matchers as m
from bbpatch.edits.base import TASKS, InsertStatement, module_level, single_statement

MODULES_IMPORT = single_statement(
    m.ImportFrom(
        module=m.Attribute(value=m.Attribute(value=m.Name("ultralytics"), attr=m.Name("nn")), attr=m.Name("modules"))
    )
)

EDIT = InsertStatement(
    name="import_addmodules",
    file=TASKS,
    summary="import ultralytics.nn.Addmodules after the ultralytics.nn.modules import",
    scope=module_level,
    where="the module",
    expected="'from ultralytics.nn.modules import (...)' statement",
    template="import_addmodules",
    anchor=MODULES_IMPORT,
)
