"""The local executor: each trial a subprocess of this machine, at most ``jobs`` at once.

With GPUs (``devices``), each running trial gets one to itself (``CUDA_VISIBLE_DEVICES``); a trial's log goes
to ``trial_dir/trial.log``. The trial processes share this process's group, so a signal to the study reaches
them too.
"""

from __future__ import annotations

import os
import subprocess
import time

from .jobs import Done, TrialJob


class LocalExecutor:
    def __init__(self, jobs: int = 1, devices: tuple[str, ...] = ()):
        self.jobs = max(1, jobs)
        self.devices = list(devices)

    def run(self, jobs: list[TrialJob], on_done: Done) -> None:
        waiting, running = list(jobs), {}  # Popen -> (job, device)
        free = list(self.devices)
        while waiting or running:
            while waiting and len(running) < self.jobs and (free or not waiting[0].gpus):
                job = waiting.pop(0)
                device = free.pop(0) if job.gpus else None
                running[self.start(job, device)] = (job, device)
            time.sleep(0.2)
            for process in [p for p in running if p.poll() is not None]:
                job, device = running.pop(process)
                if device is not None:
                    free.append(device)
                on_done(job, process.returncode)

    def start(self, job: TrialJob, device: str | None) -> subprocess.Popen:
        env = {**os.environ, **job.env}
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        job.trial_dir.mkdir(parents=True, exist_ok=True)
        with open(job.trial_dir / "trial.log", "a", encoding="utf-8") as log:
            return subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=job.trial_dir)
