"""The timm sweep: every timm architecture family as a YOLO and an RT-DETR backbone, built, trained one step and
exported. ``python -m bbpatch.releases.timm_sweep [--families F ...] [-j N] [--write-docs]`` (``make sweep-timm``).

For each family (a ``timm.models`` module: :mod:`.timm_families`) the smallest model under 60M parameters, and
the models of ``EXTRA``, each in a process of its own (:mod:`.timm_probe`, forked from a Python that has
imported torch, timm and ultralytics: :mod:`.timm_forks`; with a timeout: a crash or a hang is one row)
against a patched copy of the installed ultralytics, ``pretrained=False``. Each row says ok, or
the step that failed and its first line (``refused`` where bbpatch itself said no). Rows are cached in
``.cache/timm-sweep`` per model, timm and ultralytics version, and the digest of the bbpatch code they depend
on (``DIGESTED``), so a rerun after a fix redoes only what the fix can change; a timeout is never cached.
``--write-docs`` writes the table into docs/backbones.md and the count into the README; ``--from-cache`` runs
nothing and reports what is cached for this code (the rest: not run).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bbpatch import api

from . import timm_families, timm_probe
from .timm_forks import ForkServer, limit_cpu

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BBPATCH_TIMM_SWEEP_CACHE", REPO / ".cache" / "timm-sweep"))
BASES = ("yolov8n.yaml", "rtdetr-l.yaml")
EXTRA = (  # (family, model) swept beside each family's smallest: the models the issue names
    ("vision_transformer", "vit_small_patch14_dinov2"),
    ("eva", "vit_small_patch16_dinov3"),
    ("resnet", "resnet18"),
)
TIMEOUT_S = 3600  # wall clock, for a probe that hangs; one that computes too long meets the CPU limit first
CPU_LIMIT_S = 600  # CPU-seconds of one probe (both bases): a limit the machine's load does not move
PATCHER = Path(__file__).resolve().parents[1]
DIGESTED = ("models", "engine", "patching", "disk", "verify/checks.py", "releases/timm_probe.py")  # under patcher/
DOCS, README = REPO / "docs" / "backbones.md", REPO / "README.md"
TABLE_START, TABLE_END = "<!-- timm-sweep table: start -->", "<!-- timm-sweep table: end -->"
COUNT_START, COUNT_END = "<!-- timm-sweep count -->", "<!-- /timm-sweep count -->"


@dataclass
class Target:
    family: str
    model: str | None  # None: the family has no model under the limit
    timm_params: int | None
    extra: bool = False
    rows: list = field(default_factory=list)  # one per base: timm_probe's row dicts
    cached: bool = False


# --- the bbpatch code a row depends on, and the cache --------------------------------------------------------


def source_digest() -> str:
    """sha256 of the bbpatch code that decides a row: the modules the tree runs, the YAML derivation, the patch."""
    spec = importlib.util.find_spec("bbpatch.modules")
    roots = [PATCHER / name for name in DIGESTED] + [Path(p) for p in spec.submodule_search_locations]
    digest = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml"))
        for path in files:
            if "__pycache__" not in path.parts:
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def versions() -> dict:
    return {name: importlib.metadata.version(name) for name in ("timm", "ultralytics", "torch")}


def row_key(model: str, stack: dict, digest: str) -> str:
    key = json.dumps([model, stack, digest, BASES, timm_probe.IMGSZ, timm_probe.STEPS])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def cached_rows(key: str) -> list | None:
    path = CACHE / "rows" / f"{key}.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def store_rows(key: str, rows: list) -> None:
    path = CACHE / "rows" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(rows), "utf-8")
    os.replace(partial, path)


# --- what to sweep -------------------------------------------------------------------------------------------


def family_models(families: list[str] | None, timm_version: str) -> dict:
    """``{family: [[model, parameters], ...]}`` from the cache of this timm version, the missing ones counted."""
    path = CACHE / f"families-timm-{timm_version}.json"
    known = json.loads(path.read_text("utf-8")) if path.exists() else {}
    if families is None and "__all__" not in known:
        found = run_families(None)
        known.update(found, __all__=list(found))  # timm's order
    wanted = families or known["__all__"]
    missing = [family for family in wanted if family not in known]
    if missing:
        known.update(run_families(missing))
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known), "utf-8")
    return {family: known[family] for family in wanted}


def run_families(families: list[str] | None) -> dict:
    command = [sys.executable, "-m", "bbpatch.releases.timm_families", *(families or [])]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode:
        sys.exit((result.stderr.strip().splitlines() or [f"timm_families exited {result.returncode}"])[-1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def targets(models_by_family: dict, extra=EXTRA) -> list[Target]:
    """Each family's smallest model under the limit, then the extra models of the families chosen."""
    chosen = []
    for family, models in models_by_family.items():
        pick = timm_families.choose(models)
        smallest = min(models, key=lambda m: m[1], default=(None, None))
        chosen.append(Target(family, *(pick or (None, smallest[1]))))
    params = {name: count for models in models_by_family.values() for name, count in models}
    taken = {t.model for t in chosen}
    chosen += [Target(f, m, params.get(m), extra=True) for f, m in extra if f in models_by_family and m not in taken]
    return chosen


# --- one model -----------------------------------------------------------------------------------------------


def patched_tree(root: Path) -> Path:
    """A patched copy of the installed ultralytics package under ``root`` (what a user's ``bbpatch apply`` makes)."""
    package = Path(next(iter(importlib.util.find_spec("ultralytics").submodule_search_locations)))
    shutil.copytree(package, root / "ultralytics", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    api.apply(root)
    return root


def probe_env(tree: Path, scratch: Path) -> dict:
    path = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH", "")) if p)
    quiet = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return {**os.environ, **quiet, "YOLO_CONFIG_DIR": str(scratch / "settings"), "PYTHONPATH": path}


def ended_early(base: str, last_step: str, why: str) -> dict:
    return dict(base=base, outcome="failed", step=last_step, reason=why, params=None, gflops=None)


def exit_reason(returncode: int, stderr: str) -> str:
    if returncode < 0:
        return f"the process died of {signal.Signals(-returncode).name}"
    last = (stderr.strip().splitlines() or [""])[-1][:200]
    return f"the process exited {returncode}" + (f": {last}" if last else "")


def run_process(
    argv: list[str], env: dict, cwd: Path, timeout: float, cpu_limit: float
) -> tuple[int, bytes, bytes, bool]:
    """(exit status, stdout, stderr, timed out) of the probe ``argv`` in a new Python."""
    command = [sys.executable, "-m", "bbpatch.releases.timm_probe", *argv]
    limit = functools.partial(limit_cpu, cpu_limit)
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired as expired:
        return -signal.SIGKILL, expired.stdout or b"", expired.stderr or b"", True
    return done.returncode, done.stdout, done.stderr, False


class Probes:
    """Runs probes against ``tree``: each in a fork of a preloaded Python (:mod:`.timm_forks`, one per sweep
    thread), or with ``preload=False`` (or where that Python dies) in a new Python each."""

    def __init__(self, tree: Path, scratch: Path, preload: bool = True, cpu_limit: float = CPU_LIMIT_S):
        self.tree, self.env, self.scratch, self.preload = tree, probe_env(tree, scratch), scratch, preload
        self.cpu_limit = cpu_limit
        self.local, self.servers = threading.local(), []

    def server(self) -> ForkServer:
        if getattr(self.local, "server", None) is None:
            self.local.server = ForkServer(self.env, self.scratch)
            self.servers.append(self.local.server)
        return self.local.server

    def run(self, argv: list[str], cwd: Path, timeout: float) -> tuple[int, bytes, bytes, bool]:
        if self.preload:
            try:
                return self.server().run(argv, cwd, timeout, self.cpu_limit)
            except OSError:  # the preloaded Python is gone: this probe and the next start a new one
                self.local.server = None
        return run_process(argv, self.env, cwd, timeout, self.cpu_limit)

    def rows(self, model: str, timeout: float = TIMEOUT_S) -> tuple[list, bool]:
        """(one row per base, whether it timed out) for ``model``, from a probe process of its own."""
        with tempfile.TemporaryDirectory(prefix=f"bbpatch-timm-sweep-{model}-") as scratch:
            returncode, stdout, stderr, timed_out = self.run([model, str(self.tree), *BASES], Path(scratch), timeout)
        rows, steps = {}, {}
        for text in stdout.decode("utf-8", "replace").splitlines():
            if text.startswith(timm_probe.MARKER):
                message = json.loads(text[len(timm_probe.MARKER) :])
                if message.pop("kind") == "row":
                    rows[message["base"]] = message
                else:
                    steps[message["base"]] = message["step"]
        if timed_out:
            why = f"killed after {timeout:.0f} s (timeout)"
        elif returncode == -signal.SIGXCPU:
            why, timed_out = f"over {self.cpu_limit:.0f} CPU-seconds (the CPU limit)", True
        else:
            why = exit_reason(returncode, stderr.decode("utf-8", "replace"))
        return [rows.get(base) or ended_early(base, steps.get(base, "start"), why) for base in BASES], timed_out

    def close(self) -> None:
        for server in self.servers:
            server.close()


def sweep_target(target: Target, probes: Probes | None, stack: dict, digest: str, timeout: float) -> Target:
    """``target`` with its rows: from the cache, else from a probe (none without ``probes``: cache only)."""
    if target.model is None:
        return target
    key = row_key(target.model, stack, digest)
    rows = cached_rows(key)
    if rows is not None or probes is None:
        target.rows, target.cached = rows or [], rows is not None
        return target
    target.rows, timed_out = probes.rows(target.model, timeout)
    if not timed_out:  # a limit says as much about the machine as about the model
        store_rows(key, target.rows)
    return target


# --- the report ----------------------------------------------------------------------------------------------


def outcome_text(row: dict) -> str:
    if row["outcome"] == "ok":
        return "ok"
    return f"{row['outcome']} at {row['step']}: {row['reason']}"


def line(target: Target) -> str:
    if target.model is None:
        return f"{target.family:<26} (no model under {timm_families.MAX_PARAMETERS // 10**6}M parameters)"
    if not target.rows:
        return f"{target.family:<26} {target.model:<36} not run (nothing cached)"
    cells = "  ".join(f"{Path(r['base']).stem}: {outcome_text(r)}" for r in target.rows)
    return f"{target.family:<26} {target.model:<36} {'(cached) ' if target.cached else ''}{cells}"


def works(target: Target, base: str | None = None) -> bool:
    return bool(target.rows) and all(r["outcome"] == "ok" for r in target.rows if base in (None, r["base"]))


def counts(chosen: list[Target]) -> dict:
    families = [t for t in chosen if not t.extra]
    swept = [t for t in families if t.model is not None]
    return {
        "families": len(families),
        "swept": len(swept),
        "both": sum(works(t) for t in swept),
        "not_run": sum(not t.rows for t in swept),
        **{Path(base).stem: sum(works(t, base) for t in swept) for base in BASES},
    }


def count_sentence(numbers: dict) -> str:
    yolo, rtdetr = (numbers[Path(base).stem] for base in BASES)
    return (
        f"{numbers['both']} of {numbers['families']} timm families work in both YOLO and RT-DETR "
        f"({yolo} in YOLOv8n, {rtdetr} in RT-DETR-l; {numbers['families'] - numbers['swept']} have no model "
        f"under {timm_families.MAX_PARAMETERS // 10**6}M parameters"
        + (f"; {numbers['not_run']} not run yet)" if numbers["not_run"] else ")")
    )


def reason_pattern(row: dict, model: str) -> str:
    """A row's outcome with the model's name and the numbers taken out: rows of one cause read the same."""
    text = outcome_text(row).replace(model, "MODEL")
    return re.sub(r"\[[\d, ]+\]|\(\d+\)|\d+", "N", text)


def failure_groups(chosen: list[Target]) -> list[tuple[str, list[str]]]:
    """(cause, models) for every cause of a row that is not ok, the most common first."""
    groups: dict[str, list[str]] = {}
    for target in chosen:
        for row in target.rows:
            if row["outcome"] != "ok":
                groups.setdefault(reason_pattern(row, target.model), []).append(
                    f"{target.model} ({Path(row['base']).stem})"
                )
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def group_lines(chosen: list[Target]) -> list[str]:
    return [f"- {len(models)} x {cause}: {', '.join(models)}" for cause, models in failure_groups(chosen)]


# --- the table in docs/backbones.md and the count in the README ---------------------------------------------


def millions(value) -> str:
    return "" if value is None else f"{value / 1e6:.1f}M"


def cell(text: str, limit: int = 160) -> str:
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.replace("|", "\\|").replace("\n", " ")


def table(chosen: list[Target], stack: dict) -> str:
    heads = " | ".join(f"{Path(b).stem} | params | GFLOPs" for b in BASES)
    lines = [
        f"{count_sentence(counts(chosen))}: timm {stack['timm']}, ultralytics {stack['ultralytics']}, torch "
        f"{stack['torch']}; `pretrained=False`, eval forward at {timm_probe.IMGSZ}, a train step at batch 2, ONNX "
        f"parity; GFLOPs at 640 as ultralytics reports them. Extra models (not counted) are marked *.",
        "",
        f"| family | model | timm params | {heads} |",
        "|" + "---|" * (3 + 3 * len(BASES)),
    ]
    for target in chosen:
        name = f"`{target.model}`{' *' if target.extra else ''}" if target.model else "(none under 60M)"
        cells = [target.family, name, millions(target.timm_params)]
        for row in target.rows or [None] * len(BASES):
            cells += ["not run" if target.model else "not swept", "", ""] if row is None else row_cells(row)
        lines.append("| " + " | ".join(cells) + " |")
    causes = group_lines(chosen)
    if causes:
        lines += [
            "",
            "The rows that are not ok, by cause (model names and numbers written as MODEL and N):",
            "",
            *causes,
        ]
    return "\n".join(lines)


def row_cells(row: dict) -> list[str]:
    gflops = "" if row["gflops"] is None else f"{row['gflops']:.1f}"
    return [cell(outcome_text(row)), millions(row["params"]), gflops]


def replace_between(text: str, start: str, end: str, new: str, where: Path) -> str:
    if start not in text or end not in text:
        sys.exit(f"error: {where}: the markers {start} ... {end} are missing; put them where the table goes")
    head, rest = text.split(start, 1)
    return head + start + new + end + rest.split(end, 1)[1]


def write_docs(chosen: list[Target], stack: dict, docs: Path = DOCS, readme: Path = README) -> None:
    new_docs = replace_between(docs.read_text("utf-8"), TABLE_START, TABLE_END, f"\n{table(chosen, stack)}\n", docs)
    sentence = count_sentence(counts(chosen))
    new_readme = replace_between(readme.read_text("utf-8"), COUNT_START, COUNT_END, sentence, readme)
    docs.write_text(new_docs, "utf-8")
    readme.write_text(new_readme, "utf-8")


# --- the sweep -------------------------------------------------------------------------------------------------


def run_sweep(
    chosen: list[Target],
    jobs: int = 2,
    timeout: float = TIMEOUT_S,
    echo=print,
    from_cache: bool = False,
    cpu_limit: float = CPU_LIMIT_S,
) -> list[Target]:
    """Sweep every target in ``jobs`` probe processes at a time; ``echo`` gets each target's line, in order.
    ``from_cache``: only the rows this code has cached (the others are left empty: not run)."""
    stack, digest = versions(), source_digest()
    with tempfile.TemporaryDirectory(prefix="bbpatch-timm-sweep-tree-") as temp:
        probes = None if from_cache else Probes(patched_tree(Path(temp)), Path(temp), cpu_limit=cpu_limit)
        try:
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                for target in pool.map(lambda t: sweep_target(t, probes, stack, digest, timeout), chosen):
                    echo(line(target))
        finally:
            if probes is not None:
                probes.close()
    return chosen


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bbpatch.releases.timm_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", metavar="FAMILY", help="only these timm modules (default: all)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="probe processes at a time (default 2)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"wall seconds a model (default {TIMEOUT_S})")
    parser.add_argument(
        "--cpu-limit", type=float, default=CPU_LIMIT_S, help=f"CPU-seconds a model (default {CPU_LIMIT_S})"
    )
    parser.add_argument("--no-extra", action="store_true", help="only each family's smallest model")
    parser.add_argument("--write-docs", action="store_true", help="write the table and the count into the docs")
    parser.add_argument("--from-cache", action="store_true", help="run nothing: report the rows cached for this code")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.write_docs and args.families:
        sys.exit("error: --write-docs writes the table of every family: leave out --families")
    stack = versions()
    chosen = targets(family_models(args.families, stack["timm"]), () if args.no_extra else EXTRA)
    print(f"sweeping {len(chosen)} timm models ({stack}) with {args.jobs} jobs", flush=True)
    echo = lambda text: print(text, flush=True)  # noqa: E731
    run_sweep(chosen, args.jobs, args.timeout, echo, args.from_cache, args.cpu_limit)
    print("\n".join(group_lines(chosen)))
    print(f"{count_sentence(counts(chosen))}; {time.perf_counter() - start:.0f} s")
    if args.write_docs:
        write_docs(chosen, stack)
        print(f"wrote the table into {DOCS} and the count into {README}")
    return 1 if any(r["outcome"] == "failed" for t in chosen for r in t.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
