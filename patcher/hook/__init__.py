"""Zero-write mode: ``bbpatch enable`` patches ultralytics in memory at import, never on disk.

A ``.pth`` file in the environment's site-packages calls ``install()`` at every Python start-up; it puts
``HookFinder`` first on ``sys.meta_path``. For a handful of ultralytics module names it hands over to
``bbpatch.hook.finder``, which serves ``ultralytics.nn.tasks`` and ``utils/torch_utils.py`` patched by the
edits of ``bbpatch.engine.edits`` (the same ``bbpatch.engine.sources.patch_source`` that ``bbpatch apply``
writes with), serves ``ultralytics.nn.Addmodules`` from ``bbpatch.modules`` and lets ``check_yaml`` find the
shipped YAMLs. See docs/hook.md. This module imports nothing, so a Python that never imports ultralytics pays nothing
for it; libcst is imported (by ``compiler``) only when the code cache has no entry for the tree's sources.
"""

import os
import sys

DISABLE_VARIABLE = "BBPATCH_DISABLE"
WATCHED = frozenset(
    (
        "ultralytics.nn.tasks",
        "ultralytics.utils.torch_utils",
        "ultralytics.yolo.utils.torch_utils",  # up to 8.0.135 utils/ lives under yolo/
        "ultralytics.utils.checks",
        "ultralytics.yolo.utils.checks",
        "ultralytics.nn.Addmodules",
    )
)


class HookFinder:
    """First on sys.meta_path: a set lookup per import; ultralytics' names go to ``bbpatch.hook.finder``."""

    bbpatch_hook = True  # how install() recognises an earlier instance

    def __init__(self):
        self.started = False

    def find_spec(self, fullname, path=None, target=None):
        # the first ultralytics submodule (ultralytics.utils, before torch) also starts a cold cache's compile
        if fullname in WATCHED or (not self.started and fullname.startswith("ultralytics.")):
            if disabled():  # also read here: a process forked before it set BBPATCH_DISABLE (verify's workers)
                return None
            self.started = True
            from bbpatch.hook.finder import HOOK

            return HOOK.find_spec(fullname, path, target)
        return None


def disabled() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "") not in ("", "0")


def install() -> None:
    """Put the finder first on sys.meta_path, unless BBPATCH_DISABLE is set or one is there already."""
    if disabled() or any(getattr(finder, "bbpatch_hook", False) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, HookFinder())
