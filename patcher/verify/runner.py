"""Runs the planned tasks in pools of worker processes (``bbpatch.verify.runtime``) and gathers their results.

Pools: ``main`` (several workers: builds, forwards, training ...), ``load`` and ``safe_load`` (one fresh
process each, only ever loading checkpoints; the second with ``ULTRALYTICS_SAFE_LOAD=1``) and
``unpatched`` (one process on the unpatched copy, for the stock parity reference). A worker that
cannot import the tree, crashes or runs past the time limit fails its task; nothing hangs.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from .plan import MAIN, SAFE_LOAD, UNPATCHED, Task
from .results import FAIL, SKIP, Result

TASK_TIMEOUT = 600
MAX_RESTARTS = 3  # replacement workers after crashes, before a pool gives up
LOG_TAIL = 1500


class Worker:
    """One runtime process; its stdout messages go to the shared ``events`` queue."""

    def __init__(self, name, pool, tree_root, env, workdir, data, threads, events):
        self.name, self.pool, self.task, self.started, self.ready = name, pool, None, 0.0, False
        self.reported: set = set()
        self.log = workdir / f"{name}.log"
        command = [sys.executable, "-m", "bbpatch.verify.runtime", "--tree", str(tree_root)]
        command += ["--workdir", str(workdir / "tasks"), "--data", str(data), "--threads", str(threads)]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=workdir, env=env, text=True
            )
        threading.Thread(target=self.read, args=(events,), daemon=True).start()

    def read(self, events):
        for line in self.process.stdout:
            if line.strip():
                events.put((self, json.loads(line)))
        events.put((self, {"type": "exit", "code": self.process.wait()}))

    def send(self, task: Task):
        self.task, self.started, self.reported = task, time.monotonic(), set()
        self.process.stdin.write(json.dumps(task.message()) + "\n")
        self.process.stdin.flush()

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def kill(self):
        self.process.kill()

    def log_tail(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-LOG_TAIL:].strip()

    @property
    def idle(self):
        return self.ready and self.task is None and self.process.poll() is None


class Runner:
    def __init__(self, tasks, trees, env, workdir, data, jobs, on_result=None, timeout=TASK_TIMEOUT):
        self.pending = list(tasks)
        self.total = {t.id: t for t in tasks}
        self.trees, self.env, self.workdir, self.data = trees, env, workdir, data
        self.jobs, self.timeout = jobs, timeout
        self.on_result = on_result or (lambda result: None)
        self.events = queue.Queue()
        self.workers: list[Worker] = []
        self.outputs: dict[str, dict] = {}  # finished task id -> its outputs
        self.results: list[Result] = []
        self.broken_pools: dict[str, str] = {}
        self.restarts = 0

    # ------------------------------------------------------------ workers

    def pool_env(self, pool):
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.trees[pool]), env.get("PYTHONPATH", "")) if p)
        if pool == SAFE_LOAD:
            env["ULTRALYTICS_SAFE_LOAD"] = "1"
        return env

    def start_worker(self, pool):
        threads = max(1, (os.cpu_count() or 1) // self.jobs) if pool == MAIN else 1
        name = f"{pool}-{len(self.workers)}"
        worker = Worker(name, pool, self.trees[pool], self.pool_env(pool), self.workdir, self.data, threads, self.events)
        self.workers.append(worker)

    def start_workers(self):
        pools = {t.pool for t in self.pending}
        for pool in sorted(pools):
            count = min(self.jobs, sum(t.pool == pool for t in self.pending)) if pool == MAIN else 1
            for _ in range(count):
                self.start_worker(pool)

    def live_workers(self, pool):
        return [w for w in self.workers if w.pool == pool and w.process.poll() is None]

    # ------------------------------------------------------------ results

    def record(self, result: Result):
        self.results.append(result)
        self.on_result(result)

    def close_task(self, task: Task, status, reason, outputs=None, reported=()):
        """Report every check of ``task`` not yet reported with ``status``; mark the task finished."""
        for name in task.checks:
            if name not in reported:
                self.record(Result(task.subject, name, status, reason))
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
            worker.send(task)
        for pool in {t.pool for t in self.pending} - set(self.broken_pools):
            if not self.live_workers(pool):
                self.replace_worker(pool)

    def replace_worker(self, pool):
        dead = [w for w in self.workers if w.pool == pool]
        if self.restarts >= MAX_RESTARTS:
            self.record(Result(pool, "worker", FAIL, f"worker processes keep dying; the last log ends:\n{dead[-1].log_tail()}"))
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
            self.record(Result.from_dict(message))
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
                try:
                    worker.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
        return self.results


def count_checks(tasks) -> int:
    return sum(len(t.checks) for t in tasks)


def workdir_for(path: Path) -> Path:
    (path / "tasks").mkdir(parents=True, exist_ok=True)
    return path
