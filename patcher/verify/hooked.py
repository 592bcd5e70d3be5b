"""verify and bench on an environment where ``bbpatch enable`` patches ultralytics in memory.

The tree on disk is stock; the hook's decision (``bbpatch.hook.decide``, the one its finder makes) says what
it patches. The gate then proves the in-memory patch as it proves an applied tree: the edits' states come from
the same ``patch_source`` run, the YAMLs are the shipped ones the hook serves, and every runtime check runs
in worker processes of this interpreter, which import ultralytics through the hook. In place of the file
checks, one check that the hook is on for those workers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bbpatch import __version__
from bbpatch.disk.manifest import Manifest
from bbpatch.disk.records import Report
from bbpatch.engine.tree import Tree, installed_package
from bbpatch.hook import DISABLE_VARIABLE, disabled, environment
from bbpatch.hook.cache import engine_fingerprint, package_folder
from bbpatch.hook.finder import Decision, decide

from .results import FAIL, PASS, Result
from .static import SUBJECT, NotPatched, PatchedTree, roles_in


class HookedTree(PatchedTree):
    decision: Decision

    def yamls(self) -> list[Path]:
        folder = package_folder("bbpatch.yamls")
        return [folder / name for name in self.decision.yamls]

    def roles(self) -> dict:
        return roles_in(package_folder("bbpatch.modules"))

    def build_digest(self) -> str:
        modules = package_folder("bbpatch.modules")
        served = hashlib.sha256()  # not hash(): str hashes change from process to process
        for path in sorted(modules.glob("*.py")):
            served.update(path.name.encode() + b"\0" + path.read_bytes())
        return f"{super().build_digest()}|hook|{engine_fingerprint()}|{served.hexdigest()}"

    def file_results(self) -> list[Result]:
        if disabled():
            return [Result(SUBJECT, "hook", FAIL, f"{DISABLE_VARIABLE} is set: the workers would import stock")]
        detail = (
            f"bbpatch enable ({environment.pth_file()}): ultralytics {self.decision.release} patched in memory "
            f"at import, nothing written to the tree; code cache {self.decision.cache}"
        )
        return [Result(SUBJECT, "hook", PASS, detail)]


def load_hooked(tree: Tree, report: Report) -> HookedTree | None:
    """The hooked view of ``tree``, when the hook is on and patches it; None when it is off or another tree.

    Raises NotPatched when the hook is on but stands aside for this tree, naming why.
    """
    installed = installed_package()
    if not environment.enabled() or installed is None or installed.resolve() != tree.package:
        return None
    decision = decide(installed)
    if not decision.patched:
        raise NotPatched(f"{tree}: the import hook is on but stands aside: {decision.reason}")
    manifest = Manifest(__version__, tree.version)
    manifest.edits.update(decision.edits)
    hooked = HookedTree(tree, manifest, Report(tree, "patched", dict(decision.edits)))
    hooked.decision = decision
    return hooked
