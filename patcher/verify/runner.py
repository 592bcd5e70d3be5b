"""Runs the planned tasks in pools of worker processes (``bbpatch.verify.runtime``) and gathers their results.

Pools: ``main`` (several workers: builds, forwards, training ...), ``load`` and ``safe_load`` (one fresh
process each, only ever loading checkpoints; the second with ``ULTRALYTICS_SAFE_LOAD=1``), ``unpatched``
(one process on the unpatched copy, for the stock parity reference) and one per export format with a venv
of its own (``tflite``, ``coreml``: processes started with that venv's interpreter, as many as the format's
``workers``). A worker that
cannot import the tree, crashes or runs past the time limit fails its task; nothing hangs. The initial
workers are forked from one zygote process that imported torch and timm once; replacements are fresh
interpreters.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bbpatch.hook import DISABLE_VARIABLE

from .plan import MAIN, SAFE_LOAD, UNPATCHED, Task
from .results import FAIL, SKIP, Result

TASK_TIMEOUT = 600
MAX_RESTARTS = 3  # replacement workers after crashes, before a pool gives up
LOG_TAIL = 1500


def runtime_command(workdir: Path, data: Path, python: str | None = None) -> list:
    command = ["-m", "bbpatch.verify.runtime", "--workdir", str(workdir / "tasks"), "--data", str(data)]
    return [python or sys.executable, *command]


class Worker:
    """One runtime process seen through its two pipes; its messages go to the shared ``events`` queue."""

    def __init__(self, name, pool, log, tasks_out, messages_in, events, process=None):
        self.name, self.pool, self.log, self.process = name, pool, log, process
        self.task, self.started, self.ready, self.alive, self.pid = None, 0.0, False, True, None
        self.reported: set = set()
        self.tasks_out = tasks_out
        threading.Thread(target=self.read, args=(messages_in, events), daemon=True).start()

    @classmethod
    def spawn(cls, name, pool, tree_root, env, workdir, data, threads, events, python=None):
        """A fresh interpreter of its own (replacement workers, another venv's, or when there is no zygote)."""
        log = workdir / f"{name}.log"
        command = runtime_command(workdir, data, python) + ["--tree", str(tree_root), "--threads", str(threads)]
        with open(log, "w") as stderr:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=workdir, env=env, text=True
            )
        return cls(name, pool, log, process.stdin, process.stdout, events, process)

    def read(self, messages_in, events):
        for line in messages_in:
            if line.strip():
                message = json.loads(line)
                self.pid = message.get("pid", self.pid)
                events.put((self, message))
        code = self.process.wait() if self.process else "unknown"
        self.alive = False
        events.put((self, {"type": "exit", "code": code}))

    def send(self, task: Task, broken=()):
        self.task, self.started, self.reported = task, time.monotonic(), set()
        self.tasks_out.write(json.dumps({**task.message(), "broken": sorted(broken)}) + "\n")
        self.tasks_out.flush()

    def close(self):
        try:
            self.tasks_out.close()
        except OSError:
            pass

    def kill(self):
        if self.process:
            self.process.kill()
        elif self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive:
            self.kill()

    def log_tail(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-LOG_TAIL:].strip()

    @property
    def idle(self):
        return self.ready and self.task is None and self.alive


class Zygote:
    """One interpreter that preloads torch and timm, then forks the initial workers (see runtime.zygote)."""

    def __init__(self, workdir, data, env, compiler=True):
        self.workdir, self.data, self.env = workdir, data, env
        self.compiler = compiler  # preload torch._dynamo too (False: the workers import it if they use it)
        self.requests, self.keep = [], []  # fork requests; the orchestrator's ends of every pipe

    def add(self, name, tree_root, env, threads):
        """Create a worker's pipes now; it is forked once ``start`` runs. Returns the orchestrator's ends."""
        task_read, task_write = os.pipe()
        message_read, message_write = os.pipe()
        log = self.workdir / f"{name}.log"
        request = {
            "tree": str(tree_root),
            "env": env,
            "threads": threads,
            "fds": [task_read, message_write],
            "log": str(log),
        }
        self.requests.append(request)
        self.keep.append((task_read, message_write))
        return log, os.fdopen(task_write, "w"), os.fdopen(message_read)

    def start(self):
        fds = [fd for pair in self.keep for fd in pair]
        command = runtime_command(self.workdir, self.data) + ["--zygote", ",".join(map(str, fds))]
        command += [] if self.compiler else ["--defer-compiler"]
        with open(self.workdir / "zygote.log", "w") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=log, cwd=self.workdir, env=self.env,
                pass_fds=fds, text=True,
            )  # fmt: skip
        for fd in fds:
            os.close(fd)  # the zygote and its children hold the workers' ends now
        process.stdin.write("".join(json.dumps(r) + "\n" for r in self.requests))
        process.stdin.close()
        return process


class Runner:
    def __init__(
        self, tasks, trees, env, workdir, data, jobs, on_result=None, timeout=TASK_TIMEOUT, pythons=None, prepare=None,
        pool_sizes=None, compiler=True,
    ):  # fmt: skip
        self.prepare = prepare  # called once the workers are starting, before the first task is sent
        self.pending = list(tasks)
        self.trees, self.env, self.workdir, self.data = trees, env, workdir, data
        self.pythons = pythons or {}  # pool -> the interpreter of its workers, when not this one (another venv)
        self.pool_sizes = {MAIN: jobs, **(pool_sizes or {})}  # pool -> its most workers (others: one)
        self.jobs, self.timeout = jobs, timeout
        self.on_result = on_result or (lambda result: None)
        self.events = queue.Queue()
        self.workers: list[Worker] = []
        self.outputs: dict[str, dict] = {}  # finished task id -> its outputs
        self.unpassed: dict[str, set] = {}  # task id -> its checks that failed or were skipped
        self.results: list[Result] = []
        self.broken_pools: dict[str, str] = {}
        self.restarts = 0
        self.zygote = None
        self.compiler = compiler  # False when no task uses torch's compiler (--fast): a shorter zygote import

    # ------------------------------------------------------------ workers

    def pool_env(self, pool):
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.trees[pool]), env.get("PYTHONPATH", "")) if p)
        if pool == UNPATCHED:  # the stock reference: an enabled import hook must not patch it in memory
            env[DISABLE_VARIABLE] = "1"
        if pool == SAFE_LOAD:
            env["ULTRALYTICS_SAFE_LOAD"] = "1"
        return env

    def threads(self, pool):
        return max(1, (os.cpu_count() or 1) // self.jobs) if pool == MAIN else 1

    def start_worker(self, pool):
        """A replacement worker: a fresh interpreter."""
        name = f"{pool}-{len(self.workers)}"
        env, threads = self.pool_env(pool), self.threads(pool)
        self.workers.append(
            Worker.spawn(
                name, pool, self.trees[pool], env, self.workdir, self.data, threads, self.events, self.pythons.get(pool)
            )
        )

    def start_workers(self):
        """Every pool's initial workers, forked from one zygote."""
        zygote = Zygote(self.workdir, self.data, self.env, self.compiler)
        pools = {t.pool for t in self.pending}
        for pool in sorted(pools):
            count = min(self.pool_sizes.get(pool, 1), sum(t.pool == pool for t in self.pending))
            if self.pythons.get(pool, sys.executable) != sys.executable:
                for _ in range(count):
                    self.start_worker(pool)  # another venv: its own interpreter, started now so its imports overlap
                continue
            for _ in range(count):
                name = f"{pool}-{len(self.workers)}"
                env = {k: v for k, v in self.pool_env(pool).items() if self.env.get(k) != v}
                log, tasks_out, messages_in = zygote.add(name, self.trees[pool], env, self.threads(pool))
                self.workers.append(Worker(name, pool, log, tasks_out, messages_in, self.events))
        self.zygote = zygote.start()

    def live_workers(self, pool):
        return [w for w in self.workers if w.pool == pool and w.alive]

    # ------------------------------------------------------------ results

    def record(self, result: Result):
        self.results.append(result)
        self.on_result(result)

    def close_task(self, task: Task, status, reason, outputs=None, reported=()):
        """Report every check of ``task`` not yet reported with ``status``; mark the task finished."""
        for name in task.checks:
            if name not in reported:
                self.record(Result(task.subject, name, status, reason))
                self.unpassed.setdefault(task.id, set()).add(name)
        self.outputs[task.id] = outputs or {}

    # ------------------------------------------------------------ scheduling

    def runnable(self, pool):
        for task in self.pending:
            if task.pool == pool and (task.after is None or task.after in self.outputs):
                return task
        return None

    def dispatch(self):
        for worker in [w for w in self.workers if w.idle]:
            task = self.runnable(worker.pool)
            if task is None:
                continue
            self.pending.remove(task)
            upstream = self.outputs.get(task.after, {})
            task.inputs.update({k: upstream[k] for k in task.takes if k in upstream})
            worker.send(task, self.unpassed.get(task.after, ()))  # a check needing one of them is skipped
        for pool in {t.pool for t in self.pending} - set(self.broken_pools):
            if not self.live_workers(pool):
                self.replace_worker(pool)

    def replace_worker(self, pool):
        dead = [w for w in self.workers if w.pool == pool]
        if self.restarts >= MAX_RESTARTS:
            self.record(
                Result(pool, "worker", FAIL, f"worker processes keep dying; the last log ends:\n{dead[-1].log_tail()}")
            )
            self.fail_pool(pool, "worker processes keep dying")
            return
        self.restarts += 1
        self.start_worker(pool)

    def fail_pool(self, pool, reason):
        self.broken_pools[pool] = reason
        for task in [t for t in self.pending if t.pool == pool]:
            self.pending.remove(task)
            self.close_task(task, SKIP, f"not run: {reason}")

    def handle(self, worker: Worker, message: dict):
        kind = message["type"]
        if kind == "ready":
            worker.ready = True
        elif kind == "result":
            worker.reported.add(message["check"])
            result = Result.from_dict(message)
            if result.status != "pass":
                self.unpassed.setdefault(message.get("task") or worker.task.id, set()).add(result.check)
            self.record(result)
        elif kind == "done":
            self.outputs[worker.task.id] = message.get("outputs", {})
            worker.task = None
        elif kind == "fatal":
            subject = "unpatched copy" if worker.pool == UNPATCHED else "tree"
            if worker.pool not in self.broken_pools:
                self.record(Result(subject, "import", FAIL, f"ultralytics does not import: {message['error']}"))
            self.fail_pool(worker.pool, "ultralytics does not import")
        elif kind == "exit":
            self.worker_exited(worker, message["code"])

    def worker_exited(self, worker, code):
        if worker.task is not None:
            task, worker.task = worker.task, None
            reason = f"worker process died (exit code {code}) during this task; its log ends:\n{worker.log_tail()}"
            self.close_task(task, FAIL, reason, reported=worker.reported)

    def enforce_timeouts(self):
        now = time.monotonic()
        for worker in self.workers:
            if worker.task is not None and now - worker.started > self.timeout:
                task, worker.task = worker.task, None
                worker.kill()
                self.close_task(task, FAIL, f"timed out after {self.timeout} s", reported=worker.reported)

    def finished(self):
        return not self.pending and all(w.task is None for w in self.workers)

    def run(self) -> list[Result]:
        self.start_workers()
        try:
            if self.prepare:
                self.prepare()  # overlaps the workers' imports
            while not self.finished():
                self.dispatch()
                try:
                    worker, message = self.events.get(timeout=1.0)
                    self.handle(worker, message)
                except queue.Empty:
                    pass
                self.enforce_timeouts()
        finally:
            for worker in self.workers:
                worker.close()
            for worker in self.workers:
                worker.wait(timeout=10)
            if self.zygote is not None:
                try:
                    self.zygote.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.zygote.kill()
        return self.results


def count_checks(tasks) -> int:
    return sum(len(t.checks) for t in tasks)
