"""Worker process for the runtime checks: ``python -m bbpatch.verify.runtime --tree ROOT --workdir DIR --data FILE``.

With ``--zygote FDS`` it instead preloads torch and timm once and forks workers on request, each on its
own pair of inherited pipes (see ``runner.Zygote``): one slow import instead of one per worker
(``--defer-compiler``: without ``torch._dynamo``, see ``preload``).

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
    from .registry import Skipped
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
    from .checks import Context
    from .results import SKIP, Result
    from .suite import CHECKS

    workdir = args.workdir / task["id"]
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = task.get("inputs", {})
    ctx = Context(task["subject"], task["yaml"], inputs, workdir, args.data, inputs.get("imgsz") or args.imgsz)
    broken = set(task.get("broken", ()))  # checks of the task this one follows that did not pass
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
    parser.add_argument("--tree", type=Path, help="root folder holding the ultralytics package")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="data.yaml of the synthetic dataset")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--zygote", metavar="FD,FD,...", help="fork workers on request; these inherited fds are their pipes"
    )
    parser.add_argument(
        "--defer-compiler", action="store_true", help="the zygote leaves torch._dynamo to the workers that use it"
    )
    return parser.parse_args(argv)


def serve(args, tasks, messages):
    """Import the tree, then run tasks read from ``tasks`` until it closes."""

    def send(message):
        messages.write(json.dumps(message) + "\n")

    try:
        version, location = import_tree(args.tree)
        import torch

        torch.set_num_threads(args.threads)
    except BaseException as e:
        send({"type": "fatal", "error": error_text(e, args.tree), "traceback": traceback.format_exc()})
        return 3
    send({"type": "ready", "ultralytics": version, "file": location, "pid": os.getpid()})
    for line in tasks:
        if line.strip():
            run_task(json.loads(line), args, send)
    return 0


def zygote(args):
    """Preload, then fork one worker per request line: {"tree", "env", "threads", "fds": [read, write], "log"}."""
    from .preload import preload

    preload(compiler=not args.defer_compiler)
    pipes = {int(fd) for fd in args.zygote.split(",") if fd}  # still open here: every worker's not yet forked
    children = []
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(forked_worker(args, request, pipes))
        children.append(pid)
        for fd in request["fds"]:
            os.close(fd)  # the child holds them now; the orchestrator sees EOF when the child exits
            pipes.discard(fd)
    for pid in children:
        os.waitpid(pid, 0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # tearing down an interpreter that imported torch takes a second or two, for nothing


def forked_worker(args, request, pipes):
    read_fd, write_fd = request["fds"]
    for fd in pipes - {read_fd, write_fd}:
        os.close(fd)  # other workers' pipes: holding them would hide those workers' exits
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdin.close()
    os.environ.update(request["env"])
    worker_args = argparse.Namespace(**{**vars(args), "tree": Path(request["tree"]), "threads": request["threads"]})
    try:
        return serve(worker_args, os.fdopen(read_fd), os.fdopen(write_fd, "w", buffering=1))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def main(argv=None):
    args = parse_args(argv)
    if args.zygote is not None:
        return zygote(args)
    return serve(args, sys.stdin, open_message_stream())


if __name__ == "__main__":
    sys.exit(main())
