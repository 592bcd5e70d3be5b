"""Trials as Ray tasks: ``bbpatch compare --executor ray`` on an existing cluster, or a local one.

Each TrialJob becomes one task with ``num_cpus=job.cpus, num_gpus=job.gpus``; Ray places it, and the task runs
``job.argv`` in a subprocess on the worker (Ray sets that process's CUDA_VISIBLE_DEVICES to the GPUs it
granted). The worker's Python must have bbpatch installed (it imports this module) and ultralytics patched:
``bbpatch enable`` in the worker's environment (the zero-write hook) is the way that needs nothing else; an
applied tree first on the worker's path works too. ``argv[0]``, the driver's Python, becomes the worker's.

Where the study folder lives decides what travels. The driver leaves a probe file with a fresh token in it: a
worker that reads the same token there shares the folder (NFS, the same machine) and the trial runs in place.
Any other worker lays out the study folder's own files and the trial's folder (an interrupted trial's
``last.pt`` too, so it resumes) at the same absolute path, or under ``worker_dir`` if given, runs the trial
there, and returns the trial's folder as tar bytes, which the driver installs atomically as ``job.trial_dir``
(paths in the trial's JSON files re-rooted when it ran under ``worker_dir``). The data set is not shipped: its
YAML's paths must resolve on every worker (shared storage, or the same path on each node); so must ``--tree``.
A worker that dies takes the work it did since its task started with it: the trial restarts from the
``last.pt`` the driver had.

ray is an optional extra (``pip install 'bbpatch[ray]'``): importing this module does not import it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from .jobs import Done, TrialJob
from .shipping import install, pack_folder, pack_inputs, recover, stage

PROBE = ".bbpatch-ray-probe"
WORKER_LOG = "trial.log"  # the trial process's output, in its trial folder (as the local executor has it)
KILLED = -int(signal.SIGKILL)  # the exit code reported for a task whose worker died or was cancelled


class RayNotInstalled(RuntimeError):
    def __init__(self):
        super().__init__("--executor ray needs ray, which is not installed here: pip install 'bbpatch[ray]'")


def require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        raise RayNotInstalled()


class RayExecutor:
    """jobs.Executor on Ray. ``address``: None (``RAY_ADDRESS``, else a local cluster started for the run),
    ``"auto"`` (the cluster this node belongs to), ``"HOST:PORT"`` or ``"ray://HOST:10001"`` (Ray Client).
    ``shared``: None probes per task; True or False says it for every task."""

    def __init__(self, address=None, shared=None, worker_dir=None, init_options=None):
        require_ray()
        self.address = address
        self.shared = shared
        self.worker_dir = None if worker_dir is None else str(worker_dir)
        self.init_options = dict(init_options or {})

    def run(self, jobs: list[TrialJob], on_done: Done) -> None:
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, log_to_driver=False, **self.init_options)
        tokens = {study: write_probe(study) for study in {job.study_dir for job in jobs}}
        pending = {}
        try:
            remote = ray.remote(run_trial)
            for job in jobs:
                recover(job.trial_dir)
                task = self.task(job, tokens[job.study_dir])
                pending[remote.options(num_cpus=job.cpus, num_gpus=job.gpus).remote(task)] = job
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                on_done(job, collect(ray, ref, job))
        finally:
            for ref in pending:  # the driver was interrupted: no trial goes on training unwatched
                ray.cancel(ref, force=True)
            for study in tokens:
                (study / PROBE).unlink(missing_ok=True)
            if started:
                ray.shutdown()

    def task(self, job: TrialJob, token: str) -> dict:
        return {
            "trial_id": job.trial_id,
            "argv": list(job.argv),
            "env": {k: v for k, v in job.env.items() if k != "CUDA_VISIBLE_DEVICES"},  # Ray decides the GPUs
            "study_dir": str(job.study_dir),
            "trial_dir": str(job.trial_dir),
            "driver_python": sys.executable,
            "token": token,
            "shared": self.shared,
            "worker_dir": self.worker_dir,
            "inputs": None if self.shared else pack_inputs(job.study_dir, job.trial_dir),
        }


def write_probe(study_dir: Path) -> str:
    token = uuid.uuid4().hex
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / PROBE).write_text(token)
    return token


def collect(ray, ref, job: TrialJob) -> int:
    """The task's exit code, after its trial folder (if it came back as bytes) is installed as job.trial_dir."""
    try:
        result = ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.TaskCancelledError, ray.exceptions.NodeDiedError):
        print(f"{job.trial_id}: its Ray worker died before the trial ended", file=sys.stderr)
        return KILLED
    except ray.exceptions.RayError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        print(f"{job.trial_id}: the Ray task failed: {reason}", file=sys.stderr)
        return 1
    if result["trial"] is not None:
        try:
            moved = None if result["staged"] == str(job.study_dir) else (result["staged"], str(job.study_dir))
            install(result["trial"], job.trial_dir, moved)
        except (OSError, ValueError) as error:
            print(f"{job.trial_id}: its results came back but could not be written to {job.trial_dir}: {error}",
                  file=sys.stderr)
            return 1
    return result["rc"]


# -- on the worker ------------------------------------------------------------------------------------------


def run_trial(task: dict) -> dict:
    """The Ray task: run the trial's command here, in place or in a staged copy of the study folder."""
    study_dir, trial_dir = Path(task["study_dir"]), Path(task["trial_dir"])
    sees_driver = reads_token(study_dir, task["token"])
    shared = task["shared"] if task["shared"] is not None else sees_driver
    if shared or sees_driver and task["worker_dir"] is None:  # staging it would be staging it onto itself
        return {"rc": run_command(task, study_dir, trial_dir), "trial": None, "staged": None}
    local_study = staged_study(study_dir, task["worker_dir"])
    local_trial = local_study / trial_dir.relative_to(study_dir)
    stage(task["inputs"], local_study, local_trial)
    try:
        rc = run_command(task, local_study, local_trial)
        return {"rc": rc, "trial": pack_folder(local_trial), "staged": str(local_study)}
    finally:
        shutil.rmtree(local_trial, ignore_errors=True)


def staged_study(study_dir: Path, worker_dir: str | None) -> Path:
    """Where a worker that does not share the study folder lays it out: at the same absolute path (then every
    path a trial writes, ultralytics' checkpoint included, holds on the driver too), or under ``worker_dir``,
    at a path that is the same for every task of the study on every worker (so a resumed checkpoint's
    ``save_dir`` holds wherever the trial runs next)."""
    if worker_dir is None:
        return study_dir
    key = hashlib.sha256(str(study_dir).encode()).hexdigest()[:16]
    return Path(worker_dir) / key / study_dir.name


def reads_token(study_dir: Path, token: str) -> bool:
    try:
        return (study_dir / PROBE).read_text() == token
    except OSError:
        return False


def run_command(task: dict, study_dir: Path, trial_dir: Path) -> int:
    argv = localized(task["argv"], task["driver_python"], task["study_dir"], str(study_dir))
    trial_dir.mkdir(parents=True, exist_ok=True)
    with open(trial_dir / WORKER_LOG, "ab") as log:
        process = subprocess.run(
            argv, env={**os.environ, **task["env"]}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=trial_dir, preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    return process.returncode


def localized(argv: list[str], driver_python: str, driver_study: str, study: str) -> list[str]:
    """The driver's command as this worker runs it: its own Python, the study folder where it is staged."""
    def local(arg: str) -> str:
        if arg == driver_study or arg.startswith(driver_study + os.sep):
            return study + arg[len(driver_study):]
        return arg

    head = sys.executable if argv[0] == driver_python else argv[0]
    return [head, *map(local, argv[1:])]


def die_with_parent() -> None:
    """A trial whose Ray worker is killed (a cancelled task, a lost node) must not train on unwatched."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
