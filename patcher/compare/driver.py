"""The study's driver: plan the trials, run them on an executor, time them in one process, write the outputs.

The driver alone writes ``study.json`` (each trial's state after its process ended) and the outputs; it never
imports torch or ultralytics: trials and timing run in processes of their own.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from bbpatch import __version__

from . import candidates as candidate_names
from .jobs import Executor, TrialJob
from .local import LocalExecutor
from .plot import pareto_plot
from .study import (
    DEVICE_VARIABLE,
    DONE,
    FAILED,
    PENDING,
    Recipe,
    Study,
    StudyError,
    data_digest,
    read_json,
    write_json,
)
from .tables import candidate_rows, to_csv, to_json, to_markdown, trial_rows
from .timing import time_trials

RESERVED = {"data", "epochs", "imgsz", "batch", "seed", "deterministic", "project", "name", "exist_ok", "device",
            "resume", "model", "mode"}  # fmt: skip
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Outcome:
    study: Study
    trials: list  # compare.json's trials
    rows: list  # tables.Row, one a candidate
    files: dict  # {"md", "json", "csv", "png"} -> Path


@dataclass(frozen=True)
class Target:
    """The ultralytics tree the trials import, and what it ships."""

    root: Path  # holds the ultralytics package
    pythonpath: str | None  # put first on the trials' sys.path (None: this Python's own, applied or hooked)
    shipped: dict  # shipped YAML name -> file
    stock_folder: Path
    ultralytics: str


def locate(tree) -> Target:
    from bbpatch.engine.tree import find_tree, installed_package
    from bbpatch.verify import NotPatched, target

    found = find_tree(tree)
    try:
        shipped = {p.name: p for p in target.load(tree).yamls()}
    except NotPatched:
        shipped = {}  # stock candidates only: a shipped name is then refused by name
    installed = installed_package()
    own = installed is not None and installed.resolve() == found.package.resolve()
    root = found.package.parent
    return Target(root, None if own else str(root), shipped, found.package / "cfg" / "models", str(found.version))


def own_root() -> Path:
    """The folder holding this Python's ultralytics (applied, or patched in memory by the hook)."""
    from bbpatch.engine.tree import installed_package

    package = installed_package()
    if package is None:
        raise StudyError("no ultralytics installed for this Python; pass --tree PATH")
    return package.parent


def versions(target: Target) -> dict:
    return {"bbpatch": __version__, "ultralytics": target.ultralytics}


def new_study(models, data, out, recipe: dict, families=(), tree=None) -> Study:
    """A study folder with its study file, every trial pending; refuses bad input before writing anything."""
    folder = Path(out).resolve()
    if (folder / "study.json").exists():
        raise StudyError(f"{folder}: a study is there already; finish it with --resume {out} or choose another --out")
    if folder.exists() and any(folder.iterdir()):
        raise StudyError(f"{folder}: not empty and not a study; choose an empty or new --out folder")
    bad = sorted(RESERVED & set(recipe.get("train", {})))
    if bad:
        raise StudyError(f"--train {bad[0]}=...: the study sets {bad[0]} itself (use its own option, if any)")
    if not data:
        raise StudyError("--data DATA.yaml is required: the dataset every candidate trains and validates on")
    data = Path(data).resolve()
    digest = data_digest(data)
    target = locate(tree)
    chosen = candidate_names.resolve(models, families, target.shipped, target.stock_folder)
    study = Study(folder, Recipe(str(data), **recipe), chosen, digest, versions(target), target.pythonpath)
    study.plan_trials()
    folder.mkdir(parents=True, exist_ok=True)
    study.save()
    return study


def open_study(folder, recipe: dict | None = None, models=(), data=None) -> Study:
    """A study to resume; refuses one whose recipe or data differ from what is asked (or what it was)."""
    study = Study.load(Path(folder).resolve())
    asked = {k: v for k, v in (recipe or {}).items() if v is not None}
    if "runtimes" in asked:
        asked["runtimes"] = tuple(asked["runtimes"])
    if data is not None:
        asked["data"] = str(Path(data).resolve())
    different = [k for k, v in asked.items() if getattr(study.recipe, k) != v]
    if different:
        k = different[0]
        option = f"--{k.replace('_', '-')} {asked[k]}"
        raise StudyError(f"{folder}: {option} is not the study's ({getattr(study.recipe, k)}); resume with the "
                         "study's recipe or start a new study")  # fmt: skip
    names = {c.name for c in study.candidates}
    extra = [m for m in models if Path(m).name not in names and m not in names]
    if extra:
        raise StudyError(f"{folder}: {extra[0]} is not a candidate of this study; start a new study to add it")
    here = versions(locate(study.tree))["ultralytics"]
    if here != study.versions.get("ultralytics"):
        raise StudyError(f"{folder}: the study ran on ultralytics {study.versions.get('ultralytics')}, this tree is "
                         f"{here}; resume it there or start a new study")  # fmt: skip
    now = data_digest(Path(study.recipe.data))
    changed = [k for k in now if now[k] != study.data_sha256.get(k)]
    if changed:
        raise StudyError(f"{study.recipe.data}: the data changed since the study started ({changed[0]}); "
                         "start a new study instead of mixing results")  # fmt: skip
    return study


# ---------------------------------------------------------------- running


def result_of(study: Study, trial: str) -> dict | None:
    file = study.trial_dir(trial) / "result.json"
    try:
        return read_json(file) if file.is_file() else None
    except ValueError:
        return None


def jobs_for(study: Study, trials, jobs: int, gpus: bool) -> list[TrialJob]:
    cpus = max(1, (os.cpu_count() or 1) // max(1, jobs))
    env = {v: str(cpus) for v in THREAD_VARIABLES}
    env.update({DEVICE_VARIABLE: "0" if gpus else "cpu", "MPLBACKEND": "Agg"})
    if study.tree:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (study.tree, os.environ.get("PYTHONPATH", "")) if p)
    return [
        TrialJob(t, (sys.executable, "-m", "bbpatch.compare.trial", str(study.folder), t), study.folder,
                 study.trial_dir(t), dict(env), cpus, 1 if gpus else 0)  # fmt: skip
        for t in trials
    ]


class Progress:
    """One line per trial when its phase or epoch changes: ``trial: epoch e/E, s/epoch, study ETA``."""

    def __init__(self, study: Study, trials, parallel: int, say):
        self.study, self.trials, self.parallel, self.say = study, list(trials), max(1, parallel), say
        self.seen, self.epoch_seconds = {}, []

    def poll(self) -> None:
        for t in self.trials:
            file = self.study.trial_dir(t) / "progress.json"
            try:
                p = read_json(file) if file.is_file() else None
            except ValueError:
                continue
            key = p and (p["phase"], p.get("epoch"))
            if not p or self.seen.get(t) == key:
                continue
            self.seen[t] = key
            if p.get("seconds"):
                self.epoch_seconds.append(p["seconds"])
            if p["phase"] in ("done", "failed"):
                continue  # said when the process ends
            if p["phase"] == "train":
                self.say(f"{t}: epoch {p['epoch']}/{p['epochs']}, {p['seconds']:.1f} s/epoch, study ETA {self.eta()}")
            else:
                self.say(f"{t}: {p['phase']}")

    def eta(self) -> str:
        """Epochs left over all trials, at the mean epoch time seen so far, shared by the parallel trials."""
        if not self.epoch_seconds:
            return "?"
        epochs, left = self.study.recipe.epochs, 0
        for t in self.trials:
            phase, epoch = self.seen.get(t) or ("pending", 0)
            left += epochs - (epoch or 0) if phase in ("pending", "train") else 0
        seconds = left * sum(self.epoch_seconds) / len(self.epoch_seconds) / self.parallel
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run(study: Study, executor: Executor | None = None, jobs: int = 1, devices=(), runs: int | None = None,
        say=lambda line: None) -> Outcome:  # fmt: skip
    """Run every trial that has no finished result, time every finished one in one process, write the outputs."""
    todo = [t for t in study.trials if (result_of(study, t) or {}).get("status") != DONE]
    for t in study.trials:
        if t not in todo:
            study.trials[t].update(state=DONE, reason="")
    lock = threading.Lock()

    def on_done(job: TrialJob, code: int) -> None:
        result = result_of(study, job.trial_id)
        with lock:
            entry = study.trials[job.trial_id]
            if result is None:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                entry.update(state=FAILED, reason=f"the trial process ended ({how}) without a result; see "
                             f"{job.trial_dir / 'trial.log'}")  # fmt: skip
            else:
                entry.update(state=result["status"], reason=result.get("reason", ""))
            study.save()
        say(f"{job.trial_id}: {entry['state']}" + (f" ({entry['reason']})" if entry["reason"] else ""))

    if todo:
        study.timing = PENDING
        study.save()
        executor = executor or LocalExecutor(jobs, tuple(devices))
        say(f"{len(todo)} trial(s) to run, {len(study.trials) - len(todo)} finished before")
        run_with_progress(executor, jobs_for(study, todo, jobs, bool(devices)), on_done,
                          Progress(study, todo, jobs, say))  # fmt: skip
    results = {t: r for t in study.trials if (r := result_of(study, t)) and r.get("status") == DONE}
    timing = {}
    if results:
        say(f"timing {len(results)} trial(s) in one process, 1 thread")
        study.timing = "running"
        study.save()
        root = Path(study.tree) if study.tree else own_root()
        timing = time_trials(study.folder, results, root, study.recipe.imgsz, study.recipe.runtimes,
                             runs or study.recipe.latency_runs)  # fmt: skip
        study.timing = DONE
        study.save()
    return write_outputs(study, results, timing)


def run_with_progress(executor: Executor, jobs, on_done, progress: Progress) -> None:
    errors = []

    def target():
        try:
            executor.run(jobs, on_done)
        except BaseException as error:  # shown by the driver's thread
            errors.append(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(1.0)
        progress.poll()
    if errors:
        raise errors[0]


def write_outputs(study: Study, results: dict, timing: dict) -> Outcome:
    from .study import atomic_write

    trials = trial_rows(study, results, timing)
    rows = candidate_rows(study, trials)
    files = {k: study.folder / f"compare.{k}" for k in ("md", "json", "csv")}
    files["png"] = study.folder / "pareto.png"
    panels = pareto_plot(rows, study.recipe.runtimes, files["png"])
    write_json(files["json"], {**to_json(study, trials, rows, timing), "plot": panels})
    atomic_write(files["csv"], to_csv(trials, rows, study.recipe.runtimes))
    atomic_write(files["md"], to_markdown(study, rows, timing, trials))
    return Outcome(study, trials, rows, files)


def recipe_with_defaults(recipe: dict) -> dict:
    defaults = {"epochs": 100, "imgsz": 640, "batch": 16, "seeds": 1, "train": {}, "latency_runs": 20,
                "runtimes": ("onnxruntime", "openvino")}  # fmt: skip
    merged = {**defaults, **{k: v for k, v in recipe.items() if v is not None}}
    return {**merged, "runtimes": tuple(merged["runtimes"])}


def check_runtimes(runtimes) -> None:
    from bbpatch.benchmarks.latency import RUNTIME

    unknown = [r for r in runtimes or () if r not in RUNTIME or not RUNTIME[r].format]
    if unknown:
        exported = ", ".join(n for n, r in RUNTIME.items() if r.format)
        raise StudyError(f"--runtimes {unknown[0]}: not an exported runtime ({exported})")


def compare(models=(), data=None, out="compare", *, families=(), recipe=None, tree=None, resume=None, jobs=1,
            devices=(), executor=None, say=lambda line: None) -> Outcome:  # fmt: skip
    """``bbpatch compare``: a new study (``models``/``families`` on ``data`` with ``recipe``), or ``resume`` one."""
    recipe = dict(recipe or {})
    check_runtimes(recipe.get("runtimes"))
    if resume is not None:
        study = open_study(resume, recipe, models, data)
    else:
        study = new_study(models, data, out, recipe_with_defaults(recipe), families, tree)
    return run(study, executor, jobs, devices, say=say)
