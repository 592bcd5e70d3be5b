"""``make upstream-tests``: the installed ultralytics release's own tests, on an unpatched and a patched copy.

The release's ``tests/`` come from its source distribution (``pip download --no-binary :all:``, cached in
``.cache/upstream/``). Each selected test file runs with pytest on two copies of the installed package, one
of them patched, each first on ``PYTHONPATH`` (the ``yolo`` command too), offline (``YOLO_OFFLINE=1``) and with
private settings. Every test whose outcome differs between the copies is reported, and the exit code is 1:
the patch must not change what upstream's own suite says. Tests that fail on both copies here are listed
apart: offline they cannot fetch the weights, datasets or assets they need (see ``NOT_RUN`` for whole files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from bbpatch.engine.tree import find_tree, installed_package

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "upstream"
RUN = ("test_cli.py", "test_engine.py", "test_ndjson_converter.py", "test_python.py")
NOT_RUN = {
    "test_cuda.py": "needs a CUDA GPU",
    "test_rocm.py": "needs an AMD ROCm GPU",
    "test_integrations.py": "talks to network services (Ultralytics HUB, MLflow, Triton, Weights & Biases)",
    "test_exports.py": "every test exports the downloaded yolo26n.pt and most need optional exporters",
    "test_solutions.py": "downloads its videos, images and models from GitHub release assets",
}
FILE_TIMEOUT_S = 1800
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


def upstream_tests(version: str) -> Path:
    """The release's ``tests/`` folder, from its sdist (downloaded once)."""
    root = CACHE / version
    tests = root / f"ultralytics-{version}" / "tests"
    if not tests.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*download, f"ultralytics=={version}", "-d", str(root)], check=True)
        with tarfile.open(next(root.glob(f"ultralytics-{version}.tar.gz"))) as sdist:
            members = [m for m in sdist.getmembers() if m.name.startswith(f"ultralytics-{version}/tests/")]
            sdist.extractall(root, members, filter="data")
    return tests


def copy_tree(package: Path, root: Path) -> Path:
    shutil.copytree(package, root / "ultralytics", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_env(tree_root: Path, work: Path, config: Path) -> dict:
    """Tree first on the path (``yolo`` is this Python's entry point, so it imports the same tree), offline."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        **os.environ,
        "PATH": path,
        "PYTHONPATH": os.pathsep.join([str(tree_root), str(work)]),
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(config),
        "MPLBACKEND": "Agg",
    }


def run_file(tree_root: Path, tests: Path, name: str, scratch: Path) -> dict[str, str]:
    """``{test id: outcome}`` of one upstream test file on one tree (outcomes from pytest's JUnit XML)."""
    work = scratch / "work"
    if not work.exists():
        shutil.copytree(tests, work / "tests")
    junit = scratch / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", f"tests/{name}"]
    try:
        subprocess.run(
            [*command, f"--junitxml={junit}"],
            cwd=work,
            env=test_env(tree_root, work, scratch / "config"),
            capture_output=True,
            timeout=FILE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {f"{name}::*": f"timed out after {FILE_TIMEOUT_S} s"}
    return outcomes(junit) if junit.exists() else {f"{name}::*": "no report (pytest crashed)"}


def outcomes(junit: Path) -> dict[str, str]:
    results = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname', '').split('.')[-1]}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[test_id] = FAILED
        elif case.find("skipped") is not None:
            results[test_id] = SKIPPED
        else:
            results[test_id] = PASSED
    return results


def compare(files, scratch: Path) -> tuple[dict, dict]:
    """Run ``files`` on an unpatched and a patched copy of the installed package; return both outcome maps."""
    from bbpatch import api

    package = installed_package()
    tests = upstream_tests(find_tree(package).version)
    clean = copy_tree(package, scratch / "unpatched")
    patched = copy_tree(package, scratch / "patched")
    api.apply(patched)
    results = {"unpatched": {}, "patched": {}}
    for name in files:
        for side, root in (("unpatched", clean), ("patched", patched)):
            results[side].update(run_file(root, tests, name, scratch / f"{side}-run"))
            print(f"  {name} on the {side} copy: {summary(results[side], name)}", flush=True)
    return results["unpatched"], results["patched"]


def summary(results: dict, name: str) -> str:
    """Outcome counts of one file (or one ``file::test`` selection) on one copy."""
    mine = [v for k, v in results.items() if k.startswith(f"{name.split('::')[0]}::")]
    return ", ".join(f"{mine.count(o)} {o}" for o in (PASSED, FAILED, SKIPPED)) + f" of {len(mine)}"


def report(clean: dict, patched: dict) -> int:
    differing = sorted(k for k in clean.keys() | patched.keys() if clean.get(k) != patched.get(k))
    failing_both = sorted(k for k in clean if clean[k] == FAILED and patched.get(k) == FAILED)
    compared = len(clean.keys() & patched.keys())
    print(f"\n{compared} upstream tests run on both copies; {len(differing)} differ")
    for test_id in differing:
        before, after = clean.get(test_id, "absent"), patched.get(test_id, "absent")
        print(f"  DIFFERS {test_id}: unpatched {before}, patched {after}")
    print(f"{len(failing_both)} fail on both copies (offline: downloads; or an optional package, e.g. aiohttp):")
    for test_id in failing_both:
        print(f"  {test_id}")
    print("not run:")
    for name, reason in NOT_RUN.items():
        print(f"  {name}: {reason}")
    return 1 if differing else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "files", nargs="*", default=list(RUN), help=f"upstream test files or file::test ids (default: {' '.join(RUN)})"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bbpatch-upstream-") as scratch:
        clean, patched = compare(args.files, Path(scratch))
    sys.exit(report(clean, patched))


if __name__ == "__main__":
    main()
