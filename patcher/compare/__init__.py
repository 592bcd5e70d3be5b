"""``bbpatch compare``: candidate backbones trained with one recipe, accuracy tabled beside latency.

``study`` (the study folder, its recipe, data digest and trial states), ``candidates`` (what each MODEL names
and how it starts), ``trial`` (one trial's process: ultralytics' trainer, validator and exporter), ``jobs``
(what an executor runs) and ``local`` (the local executor), ``timing`` (bench's timer over every trial, in one
process), ``tables`` and ``plot`` (the outputs), ``driver`` (all of it, resumable). The driver never imports
torch or ultralytics.
"""

from .driver import Outcome, compare
from .study import StudyError

__all__ = ["Outcome", "StudyError", "compare"]
