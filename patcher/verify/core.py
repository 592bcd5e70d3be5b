"""The orchestration behind ``bbpatch.verify.verify``: static checks here, runtime checks in worker processes.

``verify(path)`` runs the static checks in this process (no torch), then the runtime checks in worker
processes that import the target tree (see ``runner`` and ``checks``), and returns every ``Result``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import exports
from . import plan as planning
from .cache import BuildCache, build_key
from .dataset import offline_environment, write_dataset
from .results import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PASS, Result, exit_code  # noqa: F401  (the package's names)
from .runner import Runner, count_checks
from .static import NotPatched, PatchedTree, bbpatch_roles, static_results, unpatched_copy  # noqa: F401
from .suite import CHECKS
from .target import load  # noqa: F401  (the package's names)
from .yamls import backbone_scales_results, not_installed_reason, not_installed_results

# The public names are listed once, in the package's __all__ (bbpatch.verify), which takes them from here.


class UnknownYaml(Exception):
    """A ``--yaml`` name that is neither a shipped YAML, a file, nor a stock ``*.yaml`` name (exit 2)."""


class UnknownCheck(Exception):
    """A ``--check`` name that is not a runtime check (exit 2)."""


class UnknownFormat(Exception):
    """A ``--formats`` name that is not an export format (exit 2)."""


def format_names(formats, only=()) -> tuple[str, ...] | None:
    """The export formats to prove: None (every one) when not given or ``all``, () for ``none``; each a known
    format, and none of the ``only`` checks an export check they leave out."""
    if formats is None or list(formats) == ["all"]:
        return None
    names = tuple(n for n in formats if n != "none")
    known = [f.name for f in exports.FORMATS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownFormat(f"unknown export format {', '.join(unknown)}; formats: {', '.join(known)}, or none")
    left_out = [f.check_name for f in exports.FORMATS if f.check_name in only and f.name not in names]
    if left_out:
        raise UnknownFormat(
            f"--check {left_out[0]} asks for a format --formats leaves out ({', '.join(names) or 'none'})"
        )
    return names


def check_names(only) -> list[str]:
    known = [c.name for c in CHECKS]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise UnknownCheck(f"unknown check {', '.join(unknown)}; runtime checks: {', '.join(known)}")
    return list(only)


@dataclasses.dataclass
class Outcome:
    tree: str
    ultralytics: str
    results: list
    seconds: float

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)

    def to_dict(self) -> dict:
        return {
            "tree": self.tree,
            "ultralytics": self.ultralytics,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 1),
            "results": [r.to_dict() for r in self.results],
        }


def resolve_yamls(patched: PatchedTree, names) -> list[str]:
    shipped = patched.yamls()
    if not names:
        return [str(p) for p in shipped]
    by_name = {p.name: p for p in shipped} | {p.stem: p for p in shipped}
    resolved = []
    for name in names:
        if name in by_name:
            resolved.append(str(by_name[name]))
        elif Path(name).is_file():
            resolved.append(str(Path(name).resolve()))
        elif not_installed_reason(patched, name):
            raise UnknownYaml(not_installed_reason(patched, name))
        elif name.endswith((".yaml", ".yml")) and "/" not in name:
            resolved.append(name)  # a stock name such as yolov8n.yaml: ultralytics resolves it
        else:
            names = ", ".join(sorted(p.name for p in shipped)) or "none"
            raise UnknownYaml(f"{name}: not a YAML bbpatch shipped ({names}) nor a file")
    return resolved


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def verify(
    path=None, yamls=None, fast=False, jobs=None, on_start=None, on_result=None, workdir=None,
    stock=planning.STOCK_YAML, use_cache=True, only=(), allow_untested=False, formats=None,
) -> Outcome:  # fmt: skip
    """Run verify; ``on_start(total_checks)`` and ``on_result(result)`` follow progress.

    ``only`` limits the runtime checks to these names and what they need (static checks always run).
    ``formats`` names the export formats to prove (None: every one; empty: no export checks).
    ``allow_untested`` passes the release check on an ultralytics release outside bbpatch's tested range.
    With ``fast``, builds remembered in the build cache (see ``cache``) are not repeated unless
    ``use_cache`` is False. Raises NotPatched, UnknownYaml, UnknownCheck, UnknownFormat or bbpatch's
    TreeError before running anything.
    """
    started = time.monotonic()
    on_result = on_result or (lambda result: None)
    patched = load(path)
    roles = patched.roles()
    models = [planning.describe(p, roles) for p in resolve_yamls(patched, yamls)]
    only = check_names(only)
    formats = format_names(formats, only)
    tasks = planning.plan(models, fast=fast, stock=stock, only=only, formats=formats)
    results = static_results(patched, allow_untested) + not_installed_results(patched)
    results += backbone_scales_results(models, roles)
    results += exports.missing_runtime_results(formats) if fast else []  # the full gate fails them in the workers
    builds = CachedBuilds(patched, tasks) if fast and use_cache else None
    if on_start:
        on_start(len(results) + count_checks(tasks))
    results += builds.remembered if builds else []
    for result in results:
        on_result(result)
    scratch = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bbpatch-verify-"))
    try:
        pending = builds.pending if builds else tasks
        ran = run_tasks(patched, pending, scratch, jobs or default_jobs(), on_result)
    finally:
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if builds:
        builds.remember(ran)
    results += ran
    return Outcome(
        str(patched.tree.package),
        patched.tree.version,
        in_plan_order(results, models, stock),
        time.monotonic() - started,
    )


class CachedBuilds:
    """Splits ``--fast`` tasks into builds the cache remembers (reported as passed) and ones to run."""

    def __init__(self, patched: PatchedTree, tasks):
        self.cache = BuildCache()
        digest = patched.build_digest()
        self.keys = {t.subject: build_key(digest, t.yaml) for t in tasks}
        known = {t.subject: self.cache.get(self.keys[t.subject]) for t in tasks}
        self.pending = [t for t in tasks if not known[t.subject]]
        note = "(cached: tree and YAML unchanged since it last built)"
        self.remembered = [
            Result(t.subject, "build", PASS, f"{known[t.subject]} {note}") for t in tasks if known[t.subject]
        ]

    def remember(self, results):
        for r in results:
            if r.check == "build" and r.status == PASS and r.subject in self.keys:
                self.cache.put(self.keys[r.subject], r.detail)
        self.cache.save()


def in_plan_order(results, models, stock) -> list[Result]:
    """Static results first, then by YAML (in the given order, the stock one last), checks in registry order."""
    subjects = {m.name: i for i, m in enumerate(models)} | {stock: len(models)}
    checks = {c.name: i for i, c in enumerate(CHECKS)}
    return sorted(results, key=lambda r: (subjects.get(r.subject, -1), checks.get(r.check, -1)))


DATA_CHECKS = ("train", "reload", "safe_load")  # the checks that read the synthetic dataset
FAST_CHECKS = {c.name for c in CHECKS if c.fast}


def run_tasks(patched: PatchedTree, tasks, scratch: Path, jobs: int, on_result) -> list[Result]:
    if not tasks:
        return []
    (scratch / "tasks").mkdir(parents=True, exist_ok=True)
    data = scratch / "data" / "data.yaml"  # written by write_dataset while the workers import torch
    needs_data = any(c in DATA_CHECKS for t in tasks for c in t.checks)  # --fast only builds: none
    env = {**os.environ, **offline_environment(scratch / "config")}
    trees = {t.pool: patched.root for t in tasks}
    if any(t.pool == planning.UNPATCHED for t in tasks):
        trees[planning.UNPATCHED] = unpatched_copy(patched, scratch / "unpatched")
    pythons = {f.name: exports.isolated_python(f) for f in exports.FORMATS if f.name in trees}
    workers = {f.name: min(f.workers, jobs) for f in exports.FORMATS if f.name in trees}
    prepare = (lambda: write_dataset(data.parent)) if needs_data else None
    compiler = not all(set(t.checks) <= FAST_CHECKS for t in tasks)  # builds never compile: --fast's zygote is lighter
    return Runner(
        tasks, trees, env, scratch, data, jobs, on_result, pythons=pythons, prepare=prepare, pool_sizes=workers,
        compiler=compiler,
    ).run()  # fmt: skip
