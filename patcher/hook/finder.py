"""The hook's work behind the front finder: the decision, the loaders, the YAML lookup. Stdlib only.

The first time ultralytics imports one of the watched modules, ``decide`` settles, once per process and
package, whether the hook patches that tree or stands aside; every watched module then follows that one
decision, so a process never mixes patched and stock halves. Any failure stands aside: ultralytics imports as
stock and one line on stderr says why.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

from bbpatch.hook import cache

TASKS, TORCH_UTILS = "nn/tasks.py", "utils/torch_utils.py"  # bbpatch.engine.edits.base names them so too
PATCHED_MODULES = {
    "ultralytics.nn.tasks": TASKS,
    "ultralytics.utils.torch_utils": TORCH_UTILS,
    "ultralytics.yolo.utils.torch_utils": TORCH_UTILS,  # up to 8.0.135 utils/ lives under yolo/
}
CHECKS_MODULES = ("ultralytics.utils.checks", "ultralytics.yolo.utils.checks")
ADDMODULES = "ultralytics.nn.Addmodules"
WATCHED = frozenset((*PATCHED_MODULES, *CHECKS_MODULES, ADDMODULES))  # bbpatch.hook.WATCHED: the same names
VERSION = re.compile(rb"""^__version__\s*=\s*['"]([^'"]+)['"]""", re.M)


@dataclass(frozen=True)
class Decision:
    package: Path
    release: str | None
    patched: bool
    reason: str = ""  # why the hook stands aside
    codes: dict = field(default_factory=dict)  # file key -> code object
    yamls: tuple = ()  # the shipped YAML names check_yaml finds
    edits: dict = field(default_factory=dict)
    cache: str = ""  # "warm", "written" or why it could not be written


def package_of(fullname: str, path) -> Path:
    """The ultralytics package folder, from a submodule's name and its parent's ``__path__``."""
    parent = Path(next(iter(path)))
    depth = fullname.count(".")
    return parent.parents[depth - 2] if depth >= 2 else parent


def source_files(package: Path) -> dict[str, Path]:
    """The two files bbpatch patches, in either layout (bbpatch.engine.tree.Tree.file is the on-disk twin of this)."""
    legacy = not (package / "utils" / "__init__.py").is_file() and (package / "yolo" / "utils").is_dir()
    utils = package / "yolo" / "utils" if legacy else package / "utils"
    return {TASKS: package / TASKS, TORCH_UTILS: utils / "torch_utils.py"}


def read_release(package: Path) -> str | None:
    try:
        found = VERSION.search((package / "__init__.py").read_bytes())
    except OSError:
        return None
    return found.group(1).decode("ascii", "replace") if found else None


def on_disk_patch(package: Path) -> str:
    """Why the tree counts as patched on disk (then that patch wins), or ''."""
    addmodules = package / "nn" / "Addmodules"
    if (addmodules / "bbpatch_manifest.json").exists():
        if not _calls_bbpatch(package / "nn" / "tasks.py"):  # e.g. pip install -U over an applied tree
            return (
                f"{addmodules} holds a bbpatch manifest but nn/tasks.py is stock again: run 'bbpatch apply' to "
                "patch it on disk again, or 'bbpatch revert' to leave the tree to the hook"
            )
        return f"{addmodules} holds a bbpatch manifest: the tree is patched on disk (bbpatch apply), which wins"
    if addmodules.exists():
        return f"{addmodules} exists: the tree is patched on disk (by hand, the blog recipe), which wins"
    return ""


def _calls_bbpatch(tasks: Path) -> bool:
    try:
        return b"bbpatch_role" in tasks.read_bytes()
    except OSError:
        return False


def read_sources(package: Path) -> dict[str, tuple[Path, bytes]]:
    return {key: (path, path.read_bytes()) for key, path in source_files(package).items()}


def decide(package: Path, use_cache: bool = True, prefetched=None) -> Decision:
    """Patch or stand aside, for this tree as it is on disk now; fills the code cache on a miss.

    ``prefetched(key)`` may return ``(entry, "warm" or "new")`` found earlier (see ``Hook.prefetch``).
    """
    release = read_release(package)
    reason = on_disk_patch(package)
    if reason:
        return Decision(package, release, False, reason)
    try:
        sources = read_sources(package)
    except OSError as error:
        return Decision(package, release, False, f"cannot read {error.filename}: {error.strerror}")
    key = cache.entry_key(sources)
    entry, state = prefetched(key) if prefetched else (None, "")
    if entry is None and use_cache:
        entry, state = cache.load(key), "warm"
    if entry is None:
        from bbpatch.hook import compiler  # libcst and the edits: only on a cache miss

        entry, state = compiler.compile_entry(package, sources), "new"
    if state == "new":
        state = "written" if cache.store(key, entry) else f"not written ({cache.cache_dir()} is not writable)"
    if entry.get("outcome") != "patch":
        return Decision(package, release, False, str(entry.get("reason")), cache=state)
    return Decision(
        package, release, True, codes=entry["code"], yamls=tuple(entry["yamls"]), edits=entry["edits"], cache=state
    )


class Prefetch:
    """Started at ultralytics' first submodule: the cache entry read then, or on a miss
    ``python -m bbpatch.hook.warm PACKAGE`` patching while this process imports torch (about a second),
    so a cold import waits for little."""

    TIMEOUT = 120

    def __init__(self, package: Path):
        self.key = cache.entry_key(read_sources(package))
        self.entry, self.process = cache.load(self.key), None
        if self.entry is None:
            env = {**os.environ, "BBPATCH_DISABLE": "1"}
            command = [sys.executable, "-m", "bbpatch.hook.warm", str(package)]
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def __call__(self, key: str):
        """``(entry, state)`` for ``key``; (None, "") when the tree changed since or the compiler failed."""
        if key != self.key:
            return None, ""
        if self.process is None:
            return self.entry, "warm"
        try:
            output, _ = self.process.communicate(timeout=self.TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return None, ""
        entry = cache.decode_entry(output) if self.process.returncode == 0 else None
        return (entry, "new") if entry is not None and entry.get("key") == key else (None, "")


class PatchedLoader:
    """Executes the patched code object; the file on disk is the module's ``__file__`` and its source."""

    def __init__(self, finder, decision: Decision, key: str, stock: ModuleSpec):
        self.finder, self.decision, self.key, self.stock = finder, decision, key, stock

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        try:
            exec(self.decision.codes[self.key], module.__dict__)
        except Exception as error:  # e.g. a backbone module's import failing: fall back to the stock module
            self.finder.stand_aside(self.decision, f"the patched {self.key} failed to import ({error!r})")
            for name in [n for n in module.__dict__ if not n.startswith("__")]:
                del module.__dict__[name]
            module.__loader__ = self.stock.loader
            self.stock.loader.exec_module(module)

    def get_source(self, fullname):
        return self.stock.loader.get_source(fullname)

    def is_package(self, fullname):
        return False


class YamlLookupLoader:
    """The stock ``checks`` module, with ``check_file`` also finding bbpatch's shipped YAMLs by name."""

    def __init__(self, decision: Decision, stock: ModuleSpec, yaml_dir: Path):
        self.decision, self.stock, self.yaml_dir = decision, stock, yaml_dir

    def create_module(self, spec):
        return self.stock.loader.create_module(spec)

    def exec_module(self, module):
        self.stock.loader.exec_module(module)
        if callable(getattr(module, "check_file", None)):
            module.check_file = shipped_yaml_lookup(module.check_file, self.yaml_dir, frozenset(self.decision.yamls))

    def __getattr__(self, name):  # get_source, get_data, ...: the stock loader's
        return getattr(self.stock.loader, name)


def shipped_yaml_lookup(check_file, yaml_dir: Path, names: frozenset):
    """``check_file`` that answers a bare shipped YAML name (not a file here) with bbpatch's copy of it."""

    @functools.wraps(check_file)
    def lookup(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            name = str(file).strip()
            if name in names and not os.path.exists(name):
                return str(yaml_dir / name)
        return check_file(file, *args, **kwargs)

    return lookup


class Hook:
    """What the front finder (``bbpatch.hook.HookFinder``) hands watched names to: one per process."""

    def __init__(self):
        self.decisions: dict[Path, Decision] = {}
        self.warned: set = set()
        self.prefetches: dict[Path, Prefetch] = {}

    def prefetch(self, package: Path) -> None:
        """At ultralytics' first submodule: read the cache entry, or start compiling on a miss (Prefetch)."""
        if package not in self.decisions and package not in self.prefetches and not on_disk_patch(package):
            self.prefetches[package] = Prefetch(package)

    def find_spec(self, fullname, path=None, target=None):
        if not path:
            return None
        package = package_of(fullname, path)
        if fullname not in WATCHED:
            try:
                self.prefetch(package)
            except Exception:  # noqa: BLE001 (only a head start: the first watched module decides and reports)
                pass
            return None
        try:
            return self._find(fullname, package, path)
        except Exception as error:  # never break ultralytics: stock from here on
            self.stand_aside(self.decisions.get(package) or Decision(package, None, False), f"hook error {error!r}")
            return None

    def _find(self, fullname, package, path):
        decision = self.decisions.get(package)
        if decision is None:
            decision = self.decisions[package] = decide(package, prefetched=self.prefetches.pop(package, None))
            if not decision.patched:
                self.warn(decision)
        if not decision.patched:
            return None
        if fullname == ADDMODULES:
            modules = cache.package_folder("bbpatch.modules")
            return importlib.util.spec_from_file_location(
                fullname, modules / "__init__.py", submodule_search_locations=[str(modules)]
            )
        stock = PathFinder.find_spec(fullname, path)
        if stock is None or stock.origin is None:
            return None
        if fullname in CHECKS_MODULES:
            loader = YamlLookupLoader(decision, stock, cache.package_folder("bbpatch.yamls"))
        else:
            loader = PatchedLoader(self, decision, PATCHED_MODULES[fullname], stock)
        spec = ModuleSpec(fullname, loader, origin=stock.origin)
        spec.has_location = True
        return spec

    def stand_aside(self, decision: Decision, reason: str) -> None:
        aside = Decision(decision.package, decision.release, False, reason)
        self.decisions[decision.package] = aside
        self.warn(aside)

    def warn(self, decision: Decision) -> None:
        if (decision.package, decision.reason) in self.warned:
            return
        self.warned.add((decision.package, decision.reason))
        release = f"ultralytics {decision.release}" if decision.release else "ultralytics"
        sys.stderr.write(
            f"bbpatch: the import hook stands aside, {release} ({decision.package}) imports unpatched: "
            f"{decision.reason} (BBPATCH_DISABLE=1 silences this; bbpatch disable turns the hook off)\n"
        )


HOOK = Hook()
