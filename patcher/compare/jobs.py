"""A trial as an executor sees it: a command to run, where it writes, what it needs.

Every executor (local processes, Ray) runs the same command; the trial process itself does the training,
validation and export, and writes only under ``trial_dir``. The study folder's study file is written by the
driver alone (never by a trial), so an executor only has to run commands and bring ``trial_dir`` back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class TrialJob:
    trial_id: str  # e.g. "yolov8n-mobilenetv4.yaml@seed0"; a folder name (letters, digits, . _ - @)
    argv: tuple[str, ...]  # [python, "-m", "bbpatch.compare.trial", STUDY_DIR, TRIAL_ID]
    study_dir: Path
    trial_dir: Path  # study_dir / "trials" / trial_id: everything the trial writes
    env: dict[str, str] = field(default_factory=dict)  # added to the environment (threads, CUDA_VISIBLE_DEVICES, hook)
    cpus: int = 1
    gpus: int = 0


# called once per job when its process has ended: (job, exit code); a negative code is a signal
Done = Callable[[TrialJob, int], None]


class Executor(Protocol):
    def run(self, jobs: list[TrialJob], on_done: Done) -> None:
        """Run every job (at most as many at once as the executor allows) and return when all have ended."""
