"""Adopt sweep: ``bbpatch adopt`` on every public recipe tree of the corpus, each YAML built before and after.

``python -m bbpatch.releases.adopt_sweep [--corpus DIR] [names]`` (``make sweep-adopt``). For each tree of the
manifest (``adopt_corpus.json``): unpack its archive into a temp dir; ``bbpatch adopt --dry-run`` (a refusal must
leave the tree as it was); build the tree's own model YAMLs (those its release does not ship as they are) and one
stock YAML of its family in a subprocess that imports the tree's ultralytics (``build_probe``); ``bbpatch adopt``;
build them again; ``bbpatch revert`` and compare every file with the archive. One line per tree, then a summary;
``--write-docs`` puts the table into docs/adopt.md ("Public trees"). Exit 1 when a tree's model changed or a check
broke, 0 otherwise (refusals are results).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bbpatch.releases import adopt_corpus, sweep

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = REPO / ".cache" / "adopt-corpus"
SWEEP_VENV_PYTHON = REPO / ".cache" / "adopt-sweep-venv" / "bin" / "python"
PROBE = Path(__file__).with_name("build_probe.py")
DOCS = REPO / "docs" / "adopt.md"
STOCK_YAML = {"yolov8": "yolov8n.yaml", "yolo11": "yolo11n.yaml", "rtdetr": "rtdetr-l.yaml"}
COMPARED = ("params", "state", "layers", "output")
ADOPTED, DIFFERENT, REFUSED, FAILED = "adopted exactly", "different model", "refused", "failed"
UNPROVEN = "adopted, unbuilt"  # adopt exited 0 and revert was exact, but no YAML of the tree built even before
PHASE_SECONDS = 3 * 3600


@dataclass
class Outcome:
    entry: adopt_corpus.Entry
    result: str
    detail: str = ""
    yamls: int = 0
    not_built: list[str] = field(default_factory=list)  # "name: error", YAMLs that did not build before adoption
    seconds: float = 0.0

    def line(self) -> str:
        built = f"{self.yamls - len(self.not_built)}/{self.yamls} YAMLs built" if self.yamls else ""
        more = " ..." * (len(self.not_built) > 1)
        first = f"did not build before: {self.not_built[0]}{more}" if self.not_built else ""
        parts = [p for p in (built, self.detail, first) if p]
        return f"{self.entry.name:<58} {self.result:<16} {self.seconds:6.0f}s  {'; '.join(parts)}"


# --- the tree's YAMLs --------------------------------------------------------------------------------------------


def is_model_yaml(data: bytes) -> bool:
    return re.search(rb"^backbone:", data, re.M) is not None and re.search(rb"^head:", data, re.M) is not None


@functools.lru_cache(maxsize=None)
def release_yamls(version: str) -> dict[str, bytes] | None:
    """Path -> bytes of every YAML the release's wheel ships; None when there is no such release."""
    found = {r.version: r for r in sweep.releases()[0]}.get(version)
    if found is None:
        return None
    with zipfile.ZipFile(sweep.download(found)) as wheel:
        return {n: wheel.read(n) for n in wheel.namelist() if n.endswith((".yaml", ".yml"))}


def own_yamls(root: Path, stock: dict[str, bytes] | None) -> list[Path]:
    """The tree's model YAMLs that its release does not ship byte for byte (all of them without a release)."""
    found = []
    for path in sorted(root.rglob("*.y*ml")):
        key = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if is_model_yaml(data) and (stock is None or stock.get(key) != data):
            found.append(path)
    return found


def stock_yaml(root: Path, family: str) -> list[Path]:
    name = STOCK_YAML.get(family, "yolov8n.yaml")
    alias = {"yolov8n.yaml": "yolov8.yaml", "yolo11n.yaml": "yolo11.yaml"}.get(name, name)
    candidates = sorted(root.rglob(f"cfg/models/*/{alias}")) + sorted(root.rglob(f"cfg/models/*/{name}"))
    return candidates[:1]


def sample(paths: list[Path], most: int | None) -> list[Path]:
    """At most ``most`` of them, evenly spread over the sorted list (all when ``most`` is None)."""
    if most is None or len(paths) <= most:
        return paths
    step = len(paths) / most
    return [paths[int(k * step)] for k in range(most)]


# --- building -----------------------------------------------------------------------------------------------------


def probe_env(scratch: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BBPATCH"))}
    (scratch / "config").mkdir(exist_ok=True)
    env.update(YOLO_CONFIG_DIR=str(scratch / "config"), YOLO_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def build_all(python: str, root: Path, yamls: list[Path], scratch: Path, imgsz: int) -> dict[str, dict]:
    """yaml path -> what build_probe found; a probe process that dies is restarted after the YAML it died on."""
    results: dict[str, dict] = {}
    pending = [str(p) for p in yamls]
    while pending:
        out = scratch / f"probe-{len(results)}.jsonl"
        command = [python, "-B", "-P", str(PROBE), str(root), str(out), str(imgsz)]
        try:
            done = subprocess.run(
                command, input="\n".join(pending) + "\n", text=True, capture_output=True,
                env=probe_env(scratch), timeout=PHASE_SECONDS,
            )
            died = f"the build process exited {done.returncode}: {tail(done.stderr)}"
        except subprocess.TimeoutExpired:
            died = f"the build process ran past {PHASE_SECONDS} s"
        for row in read_rows(out):
            results[row["yaml"]] = row
        pending = [p for p in pending if p not in results]
        if pending:
            first = pending.pop(0)
            results[first] = {"yaml": first, "error": died}
    return results


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


# --- one tree -----------------------------------------------------------------------------------------------------


def bbpatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bbpatch", *args], capture_output=True, text=True, timeout=600)


def said(result: subprocess.CompletedProcess, root: Path) -> str:
    """The CLI's error lines, each once, with the temp path cut to the path inside the package."""
    seen: list[str] = []
    for line in result.stderr.splitlines():
        line = line.removeprefix("error: ").strip()
        line = line.replace(str(root / "ultralytics") + "/", "").replace(str(root), "<tree>")
        if line and line not in seen:
            seen.append(line)
    return " | ".join(seen) or tail(result.stdout)


def unpack(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")


def files_of(root: Path) -> dict[str, bytes | None]:
    """The tree as sweep.snapshot sees it, less the bytecode a build may leave (-B prevents it; this is belt)."""
    return {k: v for k, v in sweep.snapshot(root).items() if "__pycache__" not in k}


def compare(before: dict[str, dict], after: dict[str, dict], root: Path) -> tuple[list[str], list[str]]:
    """(YAMLs that did not build before, 'name: what differs' for those whose model changed)."""
    not_built, changed = [], []
    for path, seen in before.items():
        name = Path(path).relative_to(root / "ultralytics").as_posix()
        if "error" in seen:
            not_built.append(f"{name}: {seen['error'].replace(str(root), '<tree>')}")
            continue
        now = after.get(path, {"error": "not built after adoption"})
        if "error" in now:
            changed.append(f"{name}: builds no more ({now['error']})")
            continue
        fields = [key for key in COMPARED if seen.get(key) != now.get(key)]
        if fields:
            changed.append(f"{name}: {', '.join(fields)} differ")
    return not_built, changed


@contextlib.contextmanager
def scratch_dir():
    """A temp dir whose path has no digits: ultralytics' yaml_model_load rewrites '<digits><n|s|l|m|x>...' anywhere
    in a YAML's path (its scale-suffix rule, meant for the file name), so a random 'h2t89xt2' broke real YAMLs."""
    base = Path(tempfile.gettempdir())
    for _ in range(100):
        path = base / ("bbpatch-adopt-sweep-" + "".join(random.choices(string.ascii_lowercase, k=10)))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
        return
    raise FileExistsError(f"{base}: no free bbpatch-adopt-sweep-* name")


def run_tree(entry: adopt_corpus.Entry, corpus: Path, python: str, most: int | None, imgsz: int) -> Outcome:
    started = time.monotonic()
    try:
        outcome = _run_tree(entry, corpus, python, most, imgsz)
    except Exception as error:  # noqa: BLE001  (the harness's own failure on one tree is that tree's result)
        outcome = Outcome(entry, FAILED, f"the sweep broke: {type(error).__name__}: {error}")
    outcome.seconds = time.monotonic() - started
    return outcome


def _run_tree(entry: adopt_corpus.Entry, corpus: Path, python: str, most: int | None, imgsz: int) -> Outcome:
    archive = corpus / entry.archive_name
    if adopt_corpus.sha256(archive) != entry.sha256:
        return Outcome(entry, FAILED, f"{archive.name}: sha256 differs from the manifest")
    with scratch_dir() as scratch:
        root = scratch / "tree"
        unpack(archive, root)
        original = files_of(root)
        dry = bbpatch("adopt", "--dry-run", str(root))
        if dry.returncode != 0:
            return refused(entry, root, original, dry)
        own = sample(own_yamls(root, release_yamls(entry.version)), most)
        yamls = list(dict.fromkeys(own + stock_yaml(root, entry.family)))
        before = build_all(python, root, yamls, scratch, imgsz)
        done = bbpatch("adopt", str(root))
        if done.returncode != 0:
            return Outcome(entry, FAILED, f"--dry-run exited 0 but adopt exited {done.returncode}: {said(done, root)}")
        after = build_all(python, root, yamls, scratch, imgsz)
        undone = bbpatch("revert", str(root))
        restored = files_of(root)
        not_built, changed = compare(before, after, root)
        result = DIFFERENT if changed else ADOPTED if len(not_built) < len(yamls) else UNPROVEN
        outcome = Outcome(entry, result, "; ".join(changed), len(yamls), not_built)
        if undone.returncode != 0 or restored != original:
            problem = said(undone, root) if undone.returncode else sweep.differences(original, restored)
            outcome.result, outcome.detail = FAILED, f"revert not byte-exact: {problem}; {outcome.detail}".strip("; ")
        return outcome


def refused(entry, root: Path, original: dict, result: subprocess.CompletedProcess) -> Outcome:
    if files_of(root) != original:
        return Outcome(entry, FAILED, f"refused but changed the tree: {sweep.differences(original, files_of(root))}")
    return Outcome(entry, REFUSED, f"exit {result.returncode}: {said(result, root)}")


# --- the whole corpus -----------------------------------------------------------------------------------------------


def chosen(entries: list[adopt_corpus.Entry], names: list[str]) -> list[adopt_corpus.Entry]:
    if not names:
        return entries
    return [e for e in entries if any(n.lower() in e.name.lower() for n in names)]


def missing_archives(entries, corpus: Path) -> list[str]:
    return [e.archive_name for e in entries if not (corpus / e.archive_name).exists()]


def sweep_trees(entries, corpus: Path, python: str, jobs: int, most: int | None, imgsz: int) -> list[Outcome]:
    outcomes = []
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(run_tree, e, corpus, python, most, imgsz) for e in entries]
        for future in futures:
            outcomes.append(future.result())
            print(outcomes[-1].line(), flush=True)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    counts = {kind: sum(o.result == kind for o in outcomes) for kind in (ADOPTED, UNPROVEN, DIFFERENT, REFUSED, FAILED)}
    return f"{len(outcomes)} trees: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())


def docs_table(outcomes: list[Outcome], most: int | None) -> str:
    rows = ["| repository | commit | ultralytics | family | result |", "|---|---|---|---|---|"]
    for o in sorted(outcomes, key=lambda o: o.entry.repo.lower()):
        text = o.result
        if o.yamls:
            text += f"; {o.yamls - len(o.not_built)} of {o.yamls} YAMLs built before adoption"
        if o.detail:
            text += f"; {o.detail}"
        if o.not_built:
            text += "; did not build before: " + "; ".join(o.not_built[:3]) + (" ..." if len(o.not_built) > 3 else "")
        text = text.replace("|", "\\|")
        rows.append(f"| {o.entry.repo} | {o.entry.commit[:12]} | {o.entry.version} | {o.entry.family} | {text} |")
    scope = "every own YAML" if most is None else f"at most {most} own YAMLs a tree (evenly spread)"
    head = (
        f"Generated by `make sweep-adopt` ({scope}, plus the family's stock YAML; {summary(outcomes)}). "
        "The archives are the repositories' `ultralytics/` packages (code and YAMLs), listed in "
        "`patcher/releases/adopt_corpus.json`; the code stays out of this repository."
    )
    return head + "\n\n" + "\n".join(rows) + "\n"


def write_docs(table: str, docs: Path = DOCS) -> None:
    text = docs.read_text("utf-8")
    start = text.index("## Public trees\n")
    end = text.find("\n## ", start + 1)
    end = len(text) if end < 0 else end + 1
    docs.write_text(text[:start] + "## Public trees\n\n" + table + "\n" + text[end:], "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bbpatch.releases.adopt_sweep", description=__doc__)
    parser.add_argument("names", nargs="*", help="only trees whose <owner>+<name>@<commit> contains one of these")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of the archives")
    parser.add_argument("--manifest", type=Path, default=adopt_corpus.MANIFEST)
    parser.add_argument("--python", default=None, help="interpreter for the builds (default: the sweep's venv)")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--max-yamls", type=int, default=None, help="build at most N of a tree's own YAMLs")
    parser.add_argument("--imgsz", type=int, default=160, help="the seeded eval image's size (640 when it fails)")
    parser.add_argument("--write-docs", action="store_true", help="put the table into docs/adopt.md")
    args = parser.parse_args(argv)
    entries = chosen(adopt_corpus.load(args.manifest), args.names)
    missing = missing_archives(entries, args.corpus)
    if missing:
        print(
            f"{args.corpus}: {len(missing)} of {len(entries)} archives missing ({missing[0]} ...); rebuild them from "
            f"git dirs of the listed commits: python -m bbpatch.releases.adopt_corpus --from-git DIR --corpus "
            f"{args.corpus}", file=sys.stderr,
        )
        return 2
    python = args.python or (str(SWEEP_VENV_PYTHON) if SWEEP_VENV_PYTHON.exists() else sys.executable)
    outcomes = sweep_trees(entries, args.corpus, python, args.jobs, args.max_yamls, args.imgsz)
    print(summary(outcomes))
    if args.write_docs:
        write_docs(docs_table(outcomes, args.max_yamls))
    return exit_code(outcomes)


def exit_code(outcomes: list[Outcome]) -> int:
    return 1 if any(o.result in (DIFFERENT, FAILED) for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
