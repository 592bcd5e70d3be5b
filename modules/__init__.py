"""Backbone and block modules that bbpatch installs into ``ultralytics/nn/Addmodules``.

This package works both as ``bbpatch.modules`` and, copied by ``bbpatch apply``, as
``ultralytics.nn.Addmodules``. It imports every ``*.py`` file next to it (files starting with ``_``
excepted) and exports the classes that declare a ``bbpatch_role`` ("backbone" or "block"), plus the
``bbpatch_*`` runtime helpers the patched ``tasks.py`` calls. A user's own backbone file dropped into
this folder is picked up the same way: no edit of ``tasks.py`` is needed (see docs/contract.md).
"""

import importlib
import pkgutil
import sys
import types

from ._runtime import *  # noqa: F401,F403
from ._runtime import RECIPE_BACKBONES, USER_NAMES
from ._runtime import __all__ as _runtime_all

__all__ = list(_runtime_all)


def _users_names():
    """In a tree adopted from the blog recipe (docs/adopt.md): the names the user's own classes hold there.

    bbpatch does not export them, so tasks.py binds them to the user's classes whatever the order of its imports;
    bbpatch's own classes of those names stay attributes of this package, for bbpatch's shipped YAMLs.
    """
    parent = sys.modules.get(__name__.rpartition(".")[0]) if __name__.endswith(".Addmodules.bbpatch") else None
    return set(RECIPE_BACKBONES) | set(USER_NAMES) | set(vars(parent) if parent is not None else ())


def _export_marked_classes():
    users = _users_names()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):  # noqa: F405 (module global)
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and getattr(obj, "bbpatch_role", None) and obj.__module__ == module.__name__:
                globals()[name] = obj
                if name not in users:
                    __all__.append(name)


def _answer_to_the_adopted_name():
    """Make ``ultralytics.nn.Addmodules.bbpatch.<file>`` (bbpatch's package in an adopted tree, what its checkpoints
    name) this package's modules too, in a plain tree: such a checkpoint then loads here (docs/adopt.md).

    Each alias is a module of that name holding the same objects, so ``_SafeLoad`` registers the classes under it.
    """
    if __name__ != "ultralytics.nn.Addmodules":
        return
    adopted = f"{__name__}.bbpatch"
    if adopted in sys.modules:  # a user's module of that name was imported first: theirs
        return
    for name, module in [(n, m) for n, m in sys.modules.items() if n == __name__ or n.startswith(__name__ + ".")]:
        alias = types.ModuleType(adopted + name[len(__name__) :], module.__doc__)
        own = ("__name__", "__spec__", "__loader__")
        alias.__dict__.update({k: v for k, v in vars(module).items() if k not in own})
        sys.modules[alias.__name__] = alias


_export_marked_classes()
_answer_to_the_adopted_name()
