"""Every runtime check, registered in run order: the model checks (``checks``), then one per export format
(``exports``). The orchestrator plans from this list and the worker runs from it."""

from . import checks, exports  # noqa: F401  (importing them registers their checks)
from .registry import CHECKS, Check, checks_for

__all__ = ["CHECKS", "Check", "checks_for"]
