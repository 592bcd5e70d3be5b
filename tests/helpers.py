"""Helpers for tests that run code against an ultralytics tree in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ISOLATED_ENV = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "OMP_NUM_THREADS": "2", "MPLBACKEND": "Agg"}


def tree_env(root: Path, env: dict | None = None) -> dict:
    # settings.json of one tree's own: a newer release's keys make an older one print errors on stdout
    config = Path(tempfile.gettempdir(), "bbpatch-tests-yolo-config", hashlib.sha256(bytes(root)).hexdigest()[:16])
    merged = {**os.environ, **ISOLATED_ENV, "YOLO_CONFIG_DIR": str(config), **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), merged.get("PYTHONPATH", "")) if p)
    return merged


def run_py(root: Path, code: str, env: dict | None = None, timeout: int = 600) -> str:
    """Run ``code`` with ``root`` first on sys.path; return stdout, fail with stderr on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=tree_env(root, env), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-6000:]}"
    )
    return result.stdout


def run_json(root: Path, code: str, env: dict | None = None):
    """``run_py`` for scripts that end by printing one JSON line (what a release logs before it is ignored)."""
    return json.loads(run_py(root, code, env).strip().splitlines()[-1])


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bbpatch", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (bytecode caches excluded), for byte-identity checks."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
