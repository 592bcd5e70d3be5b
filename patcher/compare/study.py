"""The study folder and its study file: the recipe, the data's digest, versions, and each trial's state.

``study.json`` is written by the driver alone, atomically (a temporary file renamed over it), so a study killed
at any instant has either the old file or the new one. Trials write only under ``trials/<trial_id>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

STUDY_FILE = "study.json"
FORMAT = 1
PENDING, DONE, FAILED = "pending", "done", "failed"
DEVICE_VARIABLE = "BBPATCH_COMPARE_DEVICE"  # a trial's device, set by the driver: "cpu", or "0" (the GPU it sees)


class StudyError(Exception):
    """Bad input or a study that cannot go on: one line for the user, nothing changed."""


@dataclass(frozen=True)
class Recipe:
    """What every trial shares; a resumed study must have the same one."""

    data: str  # the data YAML, absolute
    epochs: int
    imgsz: int
    batch: int
    seeds: int
    train: dict = field(default_factory=dict)  # any other ultralytics train argument
    runtimes: tuple = ("onnxruntime", "openvino")
    latency_runs: int = 20

    def train_args(self, seed: int) -> dict:
        """ultralytics' train arguments of one trial: the recipe's, the seed, deterministic."""
        args = {"workers": 2, "plots": False, **self.train}
        args.update(data=self.data, epochs=self.epochs, imgsz=self.imgsz, batch=self.batch)
        return {**args, "seed": seed, "deterministic": True}

    def to_dict(self) -> dict:
        return {**asdict(self), "runtimes": list(self.runtimes)}

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        return cls(**{**data, "runtimes": tuple(data["runtimes"])})


@dataclass(frozen=True)
class Candidate:
    name: str  # the row's label: yolov8n-mobilenetv4.yaml, my.yaml, best.pt
    model: str  # what ultralytics loads: a name it resolves or an absolute path
    start: str  # how it starts: scratch, ImageNet backbone, checkpoint


def trial_id(candidate: Candidate, seed: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', candidate.name)}@seed{seed}"


def atomic_write(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file in the same folder and one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=1) + "\n")


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the data and its digest


def data_splits(data_yaml: Path) -> dict[str, list[Path]]:
    """The files each split names (its image folder or list, and the labels beside the images), by split."""
    import yaml

    if not data_yaml.is_file():
        raise StudyError(f"{data_yaml}: no such data YAML; pass --data with the dataset's YAML file")
    try:
        config = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise StudyError(f"{data_yaml}: not valid YAML ({' '.join(str(error).split())[:160]})") from None
    if not isinstance(config, dict) or not config.get("val"):
        raise StudyError(f"{data_yaml}: no 'val' split; the study validates every trial on it, add one")
    base = Path(config.get("path") or data_yaml.parent)
    base = base if base.is_absolute() else (data_yaml.parent / base)
    splits = {}
    for split in ("train", "val", "test"):
        entries = config.get(split) or []
        paths = [base / p for p in ([entries] if isinstance(entries, str) else entries)]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise StudyError(f"{data_yaml}: the {split} split {missing[0]} does not exist")
        splits[split] = paths
    return splits


def data_digest(data_yaml: Path) -> dict:
    """sha256 of the data YAML and of each split's files (images, and labels where ultralytics looks for them)."""
    splits = data_splits(data_yaml)
    digest = {"yaml": hashlib.sha256(data_yaml.read_bytes()).hexdigest()}
    for split, paths in splits.items():
        files = sorted({f for p in paths for f in split_files(p)})
        h = hashlib.sha256()
        for f in files:
            h.update(str(f).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
        digest[split] = f"{h.hexdigest()} ({len(files)} files)"
    return digest


def split_files(path: Path) -> list[Path]:
    """A split folder's files and its labels folder's (``images`` -> ``labels``); ultralytics' caches left out."""
    folders = [path]
    if path.is_dir() and "images" in path.parts:
        parts = list(path.parts)
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
        folders.append(Path(*parts))
    files = []
    for folder in folders:
        if folder.is_file():
            files.append(folder)
        elif folder.is_dir():
            files += [f for f in folder.rglob("*") if f.is_file() and f.suffix != ".cache"]
    return files


# ---------------------------------------------------------------- the study file


@dataclass
class Study:
    folder: Path
    recipe: Recipe
    candidates: list  # [Candidate]
    data_sha256: dict
    versions: dict
    tree: str | None = None  # the ultralytics tree the trials import (None: this Python's, hooked or applied)
    trials: dict = field(default_factory=dict)  # trial_id -> {"model", "seed", "state", "reason"}
    timing: str = PENDING

    @property
    def file(self) -> Path:
        return self.folder / STUDY_FILE

    def trial_dir(self, trial: str) -> Path:
        return self.folder / "trials" / trial

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)

    def plan_trials(self) -> None:
        for candidate in self.candidates:
            for seed in range(self.recipe.seeds):
                entry = {"model": candidate.name, "seed": seed, "state": PENDING, "reason": ""}
                self.trials.setdefault(trial_id(candidate, seed), entry)

    def save(self) -> None:
        data = {
            "format": FORMAT,
            "recipe": self.recipe.to_dict(),
            "candidates": [asdict(c) for c in self.candidates],
            "data_sha256": self.data_sha256,
            "versions": self.versions,
            "tree": self.tree,
            "trials": self.trials,
            "timing": self.timing,
        }
        write_json(self.file, data)

    @classmethod
    def load(cls, folder: Path) -> Study:
        file = folder / STUDY_FILE
        if not file.is_file():
            raise StudyError(f"{folder}: not a study folder (no {STUDY_FILE}); start one with bbpatch compare MODEL...")
        try:
            data = read_json(file)
            return cls(
                folder, Recipe.from_dict(data["recipe"]), [Candidate(**c) for c in data["candidates"]],
                data["data_sha256"], data["versions"], data.get("tree"), data["trials"], data.get("timing", PENDING),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as error:
            raise StudyError(f"{file}: not a study file bbpatch can read ({type(error).__name__}: {error})") from None
