"""Helpers for tests that run code against an ultralytics tree in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Two torch threads a process, one where xdist workers share two cores: threads that outnumber the cores wait on
# each other (a build then takes many times as long).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = str(max(1, min(2, (os.cpu_count() or 1) // WORKERS)))
ISOLATED_ENV = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "OMP_NUM_THREADS": THREADS, "MPLBACKEND": "Agg"}
# where the session keeps the trees' settings (conftest's private_state), so no other run or worker shares them
CONFIG_ROOT = "BBPATCH_TESTS_CONFIG_ROOT"


def tree_env(root: Path, env: dict | None = None) -> dict:
    # settings.json of one tree's own: a newer release's keys make an older one print errors on stdout
    configs = os.environ.get(CONFIG_ROOT) or Path(tempfile.gettempdir(), "bbpatch-tests-yolo-config")
    config = Path(configs, hashlib.sha256(bytes(root)).hexdigest()[:16])
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


FORK_SERVER = r"""
import json, os, sys, traceback
for name in sys.argv[1:]:
    __import__(name)
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.environ.update(request["env"])
        code = 0
        try:
            exec(compile(request["code"], "<fresh process>", "exec"), {"__name__": "__main__"})
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(json.dumps({"returncode": returncode, "output": output}), flush=True)
"""


class Preloaded:
    """A Python that imports ``modules`` once, then runs each piece of code in a new fork of itself.

    Every run is a new process (modules not preloaded are imported afresh, a SIGKILL kills only that run)
    without paying the preloaded imports again: torch's alone costs seconds, which tests that start a
    process per kill point cannot pay a hundred times. Preload only what the code under test cannot change.
    """

    def __init__(self, modules: list[str], env: dict | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER, *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        ready = self.process.stdout.readline()
        assert ready == "ready\n", f"the preloading Python did not start (exit {self.process.wait()})"

    def run(self, code: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """``code`` run as ``__main__`` in a new process; ``output`` holds its stdout and stderr together."""
        self.process.stdin.write(json.dumps({"code": code, "env": env or {}}) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        return subprocess.CompletedProcess(["<fork>"], reply["returncode"], reply["output"], "")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)

    def __enter__(self) -> Preloaded:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
