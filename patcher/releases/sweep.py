"""Release sweep: apply, compile, status, idempotent re-apply and byte-exact revert on every ultralytics 8.x release.

``python -m bbpatch.releases.sweep`` (``make sweep``) reads the release list from the package index's JSON API,
downloads every wheel once into ``.cache/releases/wheels`` (in parallel, sha256-checked), then runs each release in a
worker process: the wheel's ``ultralytics/`` package is unpacked into a temp dir and driven through the bbpatch
API. One line per release, then a summary. A release bbpatch refuses counts as ``refused`` only when the tree is
untouched and the CLI exits 2 on it; anything else that goes wrong is ``failed``. Exit 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bbpatch import api
from bbpatch.disk.transaction import LockedError
from bbpatch.engine.tree import TreeError, version_tuple

INDEX_JSON = os.environ.get("BBPATCH_SWEEP_INDEX", "https://pypi.org/pypi/ultralytics/json")
CACHE = Path(os.environ.get("BBPATCH_RELEASE_CACHE", Path(__file__).resolve().parents[2] / ".cache" / "releases"))
WHEELS = CACHE / "wheels"
OK, REFUSED, FAILED = "ok", "refused", "failed"
EXIT_USAGE = 2  # bbpatch.cli's exit code for bad input / unsupported layout


# --- the release list and the wheels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    version: str
    filename: str
    url: str
    sha256: str
    yanked: bool = False

    @property
    def wheel(self) -> Path:
        return WHEELS / self.filename


def _is_final_8x(version: str) -> bool:
    parts = version.split(".")
    return len(parts) == 3 and parts[0] == "8" and all(part.isdigit() for part in parts)


def _wheel_of(version: str, files: list[dict]) -> Release | None:
    wheels = [f for f in files if f["filename"].endswith(".whl")]
    if not wheels:
        return None
    wheel = wheels[0]
    url = urllib.parse.urljoin(INDEX_JSON, wheel["url"])
    return Release(version, wheel["filename"], url, wheel["digests"]["sha256"], bool(wheel.get("yanked")))


def fetch_index() -> dict:
    """The index's JSON for ultralytics; the cached copy when the index cannot be reached."""
    cached = CACHE / "index.json"
    try:
        with urllib.request.urlopen(INDEX_JSON, timeout=60) as response:
            data = response.read()
    except OSError:
        if not cached.exists():
            raise
        return json.loads(cached.read_bytes())
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return json.loads(data)


def releases(index: dict | None = None) -> tuple[list[Release], list[str]]:
    """Every final 8.x release with a wheel, oldest first; and the 8.x versions that have no wheel."""
    index = fetch_index() if index is None else index
    found, no_wheel = [], []
    for version, files in index["releases"].items():
        if not _is_final_8x(version):
            continue
        release = _wheel_of(version, files)
        if release is None:
            no_wheel.append(version)
        else:
            found.append(release)
    return sorted(found, key=lambda r: version_tuple(r.version)), sorted(no_wheel, key=version_tuple)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(release: Release) -> Path:
    """The release's wheel in the cache, downloaded (and checked against the index's sha256) if missing."""
    if release.wheel.exists():
        return release.wheel
    WHEELS.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(release.url, timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != release.sha256:
        raise OSError(f"{release.filename}: sha256 does not match the index")
    partial = release.wheel.with_name(release.wheel.name + f".{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, release.wheel)
    return release.wheel


def download_all(found: list[Release], threads: int = 8) -> None:
    missing = [r for r in found if not r.wheel.exists()]
    if missing:
        print(f"downloading {len(missing)} wheels into {WHEELS}", flush=True)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(download, missing))


# --- one release -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    version: str
    outcome: str  # OK, REFUSED or FAILED
    detail: str
    seconds: float

    def line(self) -> str:
        return f"{self.version:<9} {self.outcome:<8} {self.seconds:5.1f}s  {self.detail}"


class Broken(Exception):
    """A sweep check failed: the message says which step and what was seen."""


def unpack(wheel: Path, root: Path) -> Path:
    """The wheel's ``ultralytics/`` package under ``root`` (metadata left out), as a checkout would hold it."""
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith("ultralytics/")]
        archive.extractall(root, members)
    return root


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``: what byte-exact means here."""
    state: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs:
            state[(base / name).relative_to(root).as_posix()] = None
        for name in files:
            state[(base / name).relative_to(root).as_posix()] = (base / name).read_bytes()
    return state


def differences(before: dict, after: dict) -> str:
    groups = {
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
        "added": sorted(after.keys() - before.keys()),
        "gone": sorted(before.keys() - after.keys()),
    }
    return "; ".join(f"{label} {names[:3]}" for label, names in groups.items() if names)


def expect(condition: bool, problem: str) -> None:
    if not condition:
        raise Broken(problem)


def cli_apply(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bbpatch", "apply", str(root)], capture_output=True, text=True, timeout=300
    )


def check_refusal(root: Path, before: dict, error: Exception) -> str:
    """A refusal counts only with the tree untouched, and the CLI exiting 2 on the same tree."""
    expect(snapshot(root) == before, f"refused ({error}) but the tree changed: {differences(before, snapshot(root))}")
    result = cli_apply(root)
    said = (result.stderr.strip().splitlines() or [""])[-1]
    expect(result.returncode == EXIT_USAGE, f"refused in-process, but the CLI exited {result.returncode}: {said}")
    expect(snapshot(root) == before, f"the CLI's refusal changed the tree: {differences(before, snapshot(root))}")
    return str(error).splitlines()[0]


def compiles(report: api.Report) -> None:
    """Every Python file the apply changed compiles (upstream's own SyntaxWarnings are not bbpatch's)."""
    manifest = api.read_manifest(report.tree)
    for key, record in manifest.files.items():
        if key.endswith(".py") and record.action == "changed":
            path = report.tree.file(key)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(path.read_bytes(), str(path), "exec", dont_inherit=True)


def round_trip(root: Path, report: api.Report, before: dict) -> str:
    """After a first apply: compile, status, re-apply, revert; what apply did, for the verdict line."""
    expect(report.state == "patched", f"apply said {report.state!r}")
    bad = {name: state for name, state in report.edits.items() if state not in ("applied", "n/a")}
    expect(not bad, f"apply left edits {bad}")
    compiles(report)
    patched = snapshot(root)
    status = api.status(root)
    expect(status.state == "patched" and not status.problems, f"status {status.state}: {status.problems[:2]}")
    again = api.apply(root)
    expect(again.state == "already-patched", f"second apply said {again.state!r}")
    expect(snapshot(root) == patched, f"second apply changed {differences(patched, snapshot(root))}")
    expect(api.revert(root).state == "reverted", "revert did not revert")
    after = snapshot(root)
    expect(after == before, f"revert is not byte-exact: {differences(before, after)}")
    skipped = sorted(name for name, state in report.edits.items() if state == "n/a")
    layout = "yolo/ layout, " if report.tree.moved else ""
    return f"{layout}{len(report.edits) - len(skipped)} edits" + (f", n/a: {', '.join(skipped)}" if skipped else "")


def sweep_tree(root: Path) -> tuple[str, str]:
    """(outcome, detail) for the unpacked release under ``root``."""
    before = snapshot(root)
    try:
        report = api.apply(root)
    except (TreeError, LockedError) as error:
        return REFUSED, check_refusal(root, before, error)
    return OK, round_trip(root, report, before)


def check_release(release: Release) -> Verdict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bbpatch-sweep-{release.version}-") as temp:
        try:
            outcome, detail = sweep_tree(unpack(release.wheel, Path(temp)))
        except Exception as error:  # a sweep reports every failure as a verdict, whatever it is
            outcome, detail = FAILED, f"{type(error).__name__}: {error}".splitlines()[0][:300]
    return Verdict(release.version, outcome, detail, time.perf_counter() - start)


# --- the sweep -----------------------------------------------------------------------------------------------------

BOUNDARIES = ("8.0.0", "8.0.135", "8.0.136", "8.0.238", "8.1.0", "8.3.0", "8.4.0")  # layout changes


def ci_sample(found: list[Release], every: int = 25) -> list[Release]:
    """Every ``every``-th release, the layout boundaries and the newest: what the test suite sweeps."""
    picked = {r.version for r in found[::every]} | set(BOUNDARIES) | {found[-1].version}
    return [r for r in found if r.version in picked]


def run_sweep(chosen: list[Release], workers: int = 2, echo=print) -> list[Verdict]:
    """Check each release in ``workers`` processes; ``echo`` gets each verdict line, oldest release first."""
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        verdicts = []
        for verdict in pool.imap(check_release, chosen):
            echo(verdict.line())
            verdicts.append(verdict)
    return verdicts


def summary(verdicts: list[Verdict], no_wheel: list[str], seconds: float) -> str:
    counts = Counter(v.outcome for v in verdicts)
    lines = [
        f"{len(verdicts)} releases in {seconds:.0f} s: "
        + ", ".join(f"{counts[outcome]} {outcome}" for outcome in (OK, REFUSED, FAILED))
    ]
    if no_wheel:
        lines.append(f"not swept (no wheel on the index): {', '.join(no_wheel)}")
    lines += [f"failed: {v.version}: {v.detail}" for v in verdicts if v.outcome == FAILED]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bbpatch.releases.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help="only these releases (default: every 8.x release)")
    parser.add_argument("--sample", action="store_true", help="the CI sample: every 25th release and the boundaries")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    return parser.parse_args(argv)


def choose(found: list[Release], args: argparse.Namespace) -> list[Release]:
    if args.versions:
        unknown = set(args.versions) - {r.version for r in found}
        if unknown:
            sys.exit(f"error: not 8.x releases with a wheel on the index: {', '.join(sorted(unknown))}")
        return [r for r in found if r.version in args.versions]
    return ci_sample(found) if args.sample else found


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    found, no_wheel = releases()
    chosen = choose(found, args)
    download_all(chosen)
    print(f"sweeping {len(chosen)} ultralytics releases with {args.workers} workers", flush=True)
    verdicts = run_sweep(chosen, args.workers, echo=lambda line: print(line, flush=True))
    print(summary(verdicts, no_wheel if not (args.versions or args.sample) else [], time.perf_counter() - start))
    return 1 if any(v.outcome == FAILED for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
