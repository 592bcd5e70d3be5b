"""Probe processes without paying the imports each time: ``python -m bbpatch.releases.timm_forks`` imports torch,
timm, onnxruntime and the patched ultralytics once (the tree is on ``PYTHONPATH``), then runs each request in a
fork of itself, so every probe is still a process of its own that a crash or a timeout ends alone.

Those imports are about 5 of a probe's 15 CPU-seconds. A request is one JSON line (``argv`` for
:func:`bbpatch.releases.timm_probe.main`, ``cwd``, ``timeout``, ``cpu_limit``); the fork writes its stdout and
stderr into ``cwd``, under the CPU limit, and the server answers one JSON line with the exit status
(negative: the signal) and whether it was killed for the wall-clock timeout. :class:`ForkServer` is the
sweep's side.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

PRELOADED = ("torch", "timm", "onnx", "onnxruntime", "ultralytics", "ultralytics.nn.tasks", "bbpatch.verify.checks")


def limit_cpu(seconds):
    """The kernel ends this process with SIGXCPU after ``seconds`` of CPU: a limit the machine's load cannot hit."""
    resource.setrlimit(resource.RLIMIT_CPU, (int(seconds), int(seconds) + 5))


def run_child(request):
    """In the fork: the probe, its output into files in ``cwd``; never returns."""
    from bbpatch.releases import timm_probe

    code = 1
    try:
        limit_cpu(request["cpu_limit"])
        os.chdir(request["cwd"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
        code = timm_probe.main(request["argv"])
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid, timeout):
    """(exit status, timed out) of the fork ``pid``, killed once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)), False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL, True
        time.sleep(0.1)


def serve():
    import torch

    torch.set_num_threads(1)  # before any fork: one thread a probe, the sweep runs them side by side
    for name in PRELOADED:
        __import__(name)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        returncode, timed_out = wait(pid, request["timeout"])
        print(json.dumps({"returncode": returncode, "timed_out": timed_out}), flush=True)


class ForkServer:
    """One preloaded Python; :meth:`run` is one probe in a fork of it. Use one per concurrent probe."""

    def __init__(self, env: dict, cwd: Path):
        command = [sys.executable, "-m", "bbpatch.releases.timm_forks"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd, text=True
        )
        if self.process.stdout.readline() != "ready\n":
            raise OSError(f"the preloading Python did not start (exit {self.process.wait()})")

    def run(self, argv: list[str], cwd: Path, timeout: float, cpu_limit: float) -> tuple[int, bytes, bytes, bool]:
        """(exit status, stdout, stderr, timed out) of the probe ``argv`` run in ``cwd``."""
        request = {"argv": argv, "cwd": str(cwd), "timeout": timeout, "cpu_limit": cpu_limit}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise OSError(f"the preloading Python died (exit {self.process.wait()})")
        answer = json.loads(reply)
        output = [(cwd / name).read_bytes() if (cwd / name).exists() else b"" for name in ("stdout", "stderr")]
        return answer["returncode"], *output, answer["timed_out"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


if __name__ == "__main__":
    serve()
