"""Moving a trial's folder between the driver and a worker that does not share the study folder, as tar bytes.

To the worker go the study folder's own files (the study file: the recipe) and the trial's folder as it is (an
interrupted trial's ``last.pt``, so it resumes); back comes the trial's folder. The driver installs it in one
step: unpacked beside ``trial_dir``, then renamed into place, so a driver killed at any instant leaves either
the old folder or the new one (``recover`` puts the old one back if the kill fell between the two renames).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

TRIALS = "trials"


def pack_inputs(study_dir: Path, trial_dir: Path, skip: tuple[str, ...] = ()) -> bytes:
    """The study folder as one trial needs it: everything but the other trials' folders (and ``skip``)."""
    own = trial_dir.relative_to(study_dir)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(study_dir.iterdir()):
            if path.name in skip or path.name.startswith("."):  # locks, temp files, the driver's probe
                continue
            if path.name == TRIALS and path.is_dir():
                if trial_dir.is_dir():
                    archive.add(trial_dir, arcname=str(own))
                continue
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def pack_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack(data: bytes, into: Path) -> None:
    """Extract tar bytes under ``into``; a member that would land outside it (``..``, absolute, links) refuses."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        for member in archive.getmembers():
            target = (into / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(into.resolve()):
                raise ValueError(f"{member.name}: not a plain file inside the trial folder; refusing to unpack it")
        archive.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def incoming_dir(trial_dir: Path) -> Path:
    return trial_dir.parent / f".{trial_dir.name}.incoming"


def replaced_dir(trial_dir: Path) -> Path:
    return trial_dir.parent / f".{trial_dir.name}.replaced"


def install(data: bytes, trial_dir: Path) -> None:
    """Replace ``trial_dir`` by the folder in ``data`` (a superset of it: the worker started from it)."""
    recover(trial_dir)
    incoming, replaced = incoming_dir(trial_dir), replaced_dir(trial_dir)
    unpack(data, incoming)
    if trial_dir.exists():
        os.rename(trial_dir, replaced)
    os.rename(incoming, trial_dir)
    shutil.rmtree(replaced, ignore_errors=True)


def recover(trial_dir: Path) -> None:
    """Undo what a kill inside ``install`` left: a half-unpacked folder goes, a moved-aside old one comes back."""
    incoming, replaced = incoming_dir(trial_dir), replaced_dir(trial_dir)
    shutil.rmtree(incoming, ignore_errors=True)
    if replaced.exists():
        if trial_dir.exists():
            shutil.rmtree(replaced)
        else:
            os.rename(replaced, trial_dir)
