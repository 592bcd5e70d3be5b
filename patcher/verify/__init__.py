"""``bbpatch verify``: prove a patched ultralytics tree still works, statically and by running models.

``verify(path)`` (in ``core``) runs the static checks in this process (no torch), then the runtime checks in
worker processes that import the target tree (see ``runner`` and ``checks``), and returns every ``Result``.

The names are imported on first use: every worker process imports this package too (``python -m
bbpatch.verify.runtime``), and the static half pulls in libcst, which a worker never needs.
"""

from __future__ import annotations

__all__ = [
    "verify",
    "resolve_yamls",
    "Outcome",
    "NotPatched",
    "UnknownYaml",
    "UnknownCheck",
    "UnknownFormat",
    "Result",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
]


def __getattr__(name):
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
