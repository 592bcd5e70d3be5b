"""10. BaseModel.fuse() first reparameterizes bbpatch modules that offer it (MobileOne)."""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TASKS, InsertStatement, blocks_in

FUSION_LOOP = m.For(
    iter=m.Call(func=m.Attribute(value=m.Attribute(value=m.Name("self"), attr=m.Name("model")), attr=m.Name("modules")))
)

EDIT = InsertStatement(
    name="fuse_hook",
    file=TASKS,
    summary="bbpatch_reparameterize(self) before BaseModel.fuse's fusion loop",
    scope=blocks_in("BaseModel", "fuse"),
    where="BaseModel.fuse",
    expected="'for m in self.model.modules()' fusion loop",
    template="fuse_hook",
    anchor=FUSION_LOOP,
    position="before",
)
