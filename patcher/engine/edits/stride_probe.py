"""8. DetectionModel's stride probe grows from 256 only when a backbone asks for more."""

import bbpatch.engine.matchers as m
from bbpatch.engine.edits.base import TASKS, InsertStatement, assign_to, blocks_in

EDIT = InsertStatement(
    name="stride_probe",
    file=TASKS,
    summary="s = bbpatch_probe_size(self.model, s) after DetectionModel's s = 256",
    scope=blocks_in("DetectionModel", "__init__"),
    where="DetectionModel.__init__",
    expected="'s = 256' stride probe",
    template="stride_probe",
    anchor=assign_to("s", m.Integer()),
)
