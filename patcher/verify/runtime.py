"""Worker process for the runtime checks: ``python -m bbpatch.verify.runtime --tree ROOT --workdir DIR --data FILE``.

Puts the target tree first on ``sys.path``, imports its ultralytics, then reads one task per line (JSON)
from stdin and answers on stdout with one JSON message per line:

- ``{"type": "ready", "ultralytics": version, "file": path}`` once the tree imported;
- ``{"type": "fatal", "error": ...}`` when it did not (the process then exits);
- ``{"type": "result", ...}`` per check, then ``{"type": "done", "task": id, "outputs": {...}}`` per task.

Everything else written to stdout (ultralytics logs, exporter output) is diverted to stderr, so the
message stream stays clean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path


def open_message_stream():
    """Keep the real stdout for messages; send everything else that writes to fd 1 to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def import_tree(tree: Path):
    sys.path.insert(0, str(tree))
    import ultralytics
    import ultralytics.nn.tasks  # noqa: F401  (imports the patched tasks.py and the Addmodules package)

    location = Path(ultralytics.__file__).resolve()
    if tree.resolve() not in location.parents:
        raise RuntimeError(f"imported ultralytics from {location}, not from the tree {tree}")
    return ultralytics.__version__, str(location.parent)


def error_text(e: BaseException, tree: Path) -> str:
    """The error, and where in the tree (or a bbpatch module) it was raised when that is not obvious."""
    message = str(e) if isinstance(e, AssertionError) and str(e) else f"{type(e).__name__}: {e}"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if str(tree) in f.filename]
    if frames and not isinstance(e, AssertionError):
        f = frames[-1]
        message += f" ({os.path.relpath(f.filename, tree)}:{f.lineno})"
    return message


def details(returned):
    """A check returns its detail line, or (detail line, data dict) to hand back measured values."""
    return returned if isinstance(returned, tuple) else (returned or "", {})


def run_check(check, ctx, tree):
    from .checks import Skipped
    from .results import FAIL, PASS, SKIP, Result

    start = time.perf_counter()
    try:
        status, detail, data = PASS, *details(check.fn(ctx))
    except Skipped as e:
        status, detail, data = SKIP, str(e), {}
    except Exception as e:
        status, detail, data = FAIL, error_text(e, tree), {"traceback": traceback.format_exc()}
    return Result(ctx.subject, check.name, status, detail, round(time.perf_counter() - start, 2), data)


def run_task(task, args, send):
    from .checks import CHECKS, Context
    from .results import SKIP, Result

    workdir = args.workdir / task["id"]
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = task.get("inputs", {})
    ctx = Context(task["subject"], task["yaml"], inputs, workdir, args.data, inputs.get("imgsz") or args.imgsz)
    broken = set()
    for check in [c for c in CHECKS if c.name in task["checks"]]:
        blocked = [n for n in check.needs if n in broken]
        if blocked:
            result = Result(ctx.subject, check.name, SKIP, f"not run: {blocked[0]} failed")
        else:
            result = run_check(check, ctx, args.tree)
        if result.status != "pass":
            broken.add(check.name)
        send({"type": "result", "task": task["id"], **result.to_dict()})
    send({"type": "done", "task": task["id"], "outputs": ctx.outputs})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bbpatch.verify.runtime")
    parser.add_argument("--tree", type=Path, required=True, help="root folder holding the ultralytics package")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="data.yaml of the synthetic dataset")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    messages = open_message_stream()

    def send(message):
        messages.write(json.dumps(message) + "\n")

    try:
        version, location = import_tree(args.tree)
        import torch

        torch.set_num_threads(args.threads)
    except BaseException as e:
        send({"type": "fatal", "error": error_text(e, args.tree), "traceback": traceback.format_exc()})
        return 3
    send({"type": "ready", "ultralytics": version, "file": location})
    for line in sys.stdin:
        if line.strip():
            run_task(json.loads(line), args, send)
    return 0


if __name__ == "__main__":
    sys.exit(main())
