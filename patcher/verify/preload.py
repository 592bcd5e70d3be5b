"""What the zygote imports once for every worker it forks (see ``runtime.zygote``), and how it keeps that short.

The slow, tree-independent part of a worker's start-up is torch, torchvision and timm. About a third of it
is ``torch._dynamo`` (the compiler's front end), which no ``--fast`` check uses, but which two import-time
lines pull in: torchvision's ``ops/roi_align.py`` (``from torch._dynamo.utils import is_compile_supported``,
called only when ``roi_align`` runs) and timm's ``@torch.compiler.disable`` decorators (``naflexvit``), which
wrap each function when the module is imported. ``compiler_deferred`` lets both imports finish without it:
the first one gets a stand-in ``torch._dynamo.utils`` whose ``is_compile_supported`` imports the real module
when it is called, the second a ``disable`` whose wrapper asks the real ``torch.compiler.disable`` on its
first call. Anything else that reaches for ``torch._dynamo`` meanwhile imports the real module (the stand-ins
step aside), so nothing can see a half module; the full gate, whose exports use the compiler, preloads it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import types

# ultralytics itself is imported after the fork, from the worker's own tree and with its own environment
# (ULTRALYTICS_SAFE_LOAD is read at import).
PRELOAD = ("torch", "torchvision", "timm", "cv2", "numpy", "yaml", "PIL.Image")
CHECKS = "bbpatch.verify.suite"  # the runtime checks themselves (no torch at import): 70 ms less in each worker
COMPILER = "torch._dynamo"
STAND_INS = (COMPILER, f"{COMPILER}.utils")


def preload(compiler: bool = True):
    """Import ``PRELOAD`` (what is not installed is left out); with ``compiler=False`` without ``torch._dynamo``."""
    with contextlib.nullcontext() if compiler else compiler_deferred():
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    if compiler:
        with contextlib.suppress(ImportError):
            importlib.import_module(COMPILER)
    importlib.import_module(CHECKS)
    assert "ultralytics" not in sys.modules, "a preloaded module imported ultralytics"


class StandIn(types.ModuleType):
    """A placeholder in ``sys.modules``: any name it does not hold imports the real module and is read from it."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        step_aside()
        return getattr(importlib.import_module(self.__name__), name)


def step_aside():
    for name in STAND_INS:
        if isinstance(sys.modules.get(name), StandIn):
            del sys.modules[name]


def is_compile_supported(device_type):
    """torchvision's import-time name; the real function, imported when ``roi_align`` first asks it."""
    from torch._dynamo.utils import is_compile_supported as real

    return real(device_type)


def deferred_disable(disable):
    """``torch.compiler.disable`` that wraps now and lets the real one wrap on the wrapper's first call."""

    def lazy(fn=None, recursive=True, *, reason=None):
        if fn is None:
            return functools.partial(lazy, recursive=recursive, reason=reason)
        real = []

        @functools.wraps(fn)
        def call(*args, **kwargs):
            if not real:
                real.append(disable(fn, recursive, reason=reason))
            return real[0](*args, **kwargs)

        return call

    return lazy


@contextlib.contextmanager
def compiler_deferred():
    """Imports inside the block leave ``torch._dynamo`` unimported (see the module docstring)."""
    import torch

    compiler = getattr(torch, "compiler", None)
    disable = getattr(compiler, "disable", None)
    if COMPILER in sys.modules or disable is None:
        yield
        return
    utils = StandIn(STAND_INS[1])
    utils.is_compile_supported = is_compile_supported
    sys.modules.update({STAND_INS[0]: StandIn(STAND_INS[0]), STAND_INS[1]: utils})
    compiler.disable = deferred_disable(disable)
    try:
        yield
    finally:
        compiler.disable = disable
        step_aside()
