"""``bbpatch enable`` / ``disable``: the one ``.pth`` file that turns the hook on for an environment.

Like coverage.py's subprocess support, a line in a ``.pth`` file of the environment's site-packages runs at
every interpreter start-up, so DDP workers, dataloader workers and ``yolo`` subprocesses all get the hook.
The line is harmless when left behind: with bbpatch uninstalled its import fails and it does nothing. The
file starts with a comment naming bbpatch; ``disable`` removes only a file that does.
"""

from __future__ import annotations

import os
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bbpatch.engine.tree import TreeError, installed_package
from bbpatch.hook import DISABLE_VARIABLE, disabled
from bbpatch.hook import cache as code_cache
from bbpatch.hook.finder import Decision, decide

PTH_NAME = "bbpatch-hook.pth"
MARKER = "# bbpatch import hook, written by 'bbpatch enable'; 'bbpatch disable' removes this file"
STARTUP_LINE = (
    'import os; exec("try:\\n from bbpatch.hook import install\\nexcept Exception:\\n pass\\nelse:\\n install()") '
    f'if os.environ.get("{DISABLE_VARIABLE}", "") in ("", "0") else None'
)
PTH_TEXT = f"{MARKER}\n{STARTUP_LINE}\n"


class HookError(TreeError):
    """enable / disable cannot do what was asked: nothing was changed."""


def site_packages() -> Path:
    """The site-packages folder of the Python running bbpatch: every start-up of it reads its .pth files."""
    return Path(sysconfig.get_path("purelib"))


def pth_file() -> Path:
    return site_packages() / PTH_NAME


def is_ours(path: Path) -> bool:
    try:
        return path.read_text("utf-8").startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def enabled() -> bool:
    return is_ours(pth_file())


@dataclass
class HookReport:
    pth: Path
    state: str  # enable: enabled / already-enabled; disable: disabled / not-enabled; status: on / off
    decision: Decision | None = None
    note: str = ""

    def as_dict(self) -> dict:
        decision = self.decision
        return {
            "hook": self.state,
            "pth": str(self.pth),
            "disabled_by": DISABLE_VARIABLE if disabled() else None,
            "ultralytics": decision.release if decision else None,
            "package": str(decision.package) if decision else None,
            "patches": decision.patched if decision else None,
            "stands_aside": decision.reason if decision and not decision.patched else None,
            "code_cache": decision.cache if decision else None,
            "note": self.note or None,
        }


def enable() -> HookReport:
    path = pth_file()
    if path.exists() and not is_ours(path):
        raise HookError(f"{path}: exists and is not bbpatch's; move it away, then run bbpatch enable")
    state = "already-enabled" if path.exists() and path.read_text("utf-8") == PTH_TEXT else "enabled"
    if state == "enabled":
        write_atomically(path, PTH_TEXT.encode("utf-8"))
    return HookReport(path, state, installed_decision())  # also fills the code cache: the first import is warm


def disable() -> HookReport:
    path = pth_file()
    if not path.exists():
        return HookReport(path, "not-enabled")
    if not is_ours(path):
        raise HookError(f"{path}: not written by bbpatch enable; left alone")
    try:
        path.unlink()
    except OSError as error:
        raise HookError(f"{path}: cannot remove it ({error.strerror})") from None
    return HookReport(path, "disabled", note=f"code cache left in {code_cache.cache_dir()} (safe to delete)")


def status() -> HookReport:
    if not enabled():
        return HookReport(pth_file(), "off", note="'bbpatch enable' patches ultralytics in memory, writing nothing")
    return HookReport(pth_file(), "on", installed_decision())


def installed_decision() -> Decision | None:
    """What the hook does (or would do) with the ultralytics this Python imports; never imports it."""
    package = installed_package()
    return decide(package) if package is not None else None


def write_atomically(path: Path, data: bytes) -> None:
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    except OSError as error:
        raise HookError(f"{path.parent}: cannot write there ({error.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        os.unlink(temporary)
        raise HookError(f"{path}: cannot write it ({error.strerror})") from None


def describe(report: HookReport) -> list[str]:
    """Lines for ``bbpatch status`` / ``enable``."""
    lines = [f"hook: {report.state} ({report.pth})"]
    if disabled():
        lines.append(f"  note: {DISABLE_VARIABLE} is set: this process and its children import ultralytics stock")
    decision = report.decision
    if report.state in ("off", "disabled", "not-enabled"):
        pass
    elif decision is None:
        lines.append("  note: no installed ultralytics for this Python")
    elif decision.patched:
        lines.append(
            f"  patches ultralytics {decision.release} ({decision.package}) in memory at import: "
            f"{sum(s == 'applied' for s in decision.edits.values())} edits, code cache {decision.cache}"
        )
    else:
        lines.append(f"  stands aside for ultralytics {decision.release} ({decision.package}): {decision.reason}")
    if report.note:
        lines.append(f"  note: {report.note}")
    return lines
