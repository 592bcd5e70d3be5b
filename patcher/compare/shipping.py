"""Moving a trial's folder between the driver and a worker that does not share the study folder, as tar bytes.

To the worker go the study folder's own files (the study file: the recipe) and the trial's folder as it is (an
interrupted trial's ``last.pt``, so it resumes); back comes the trial's folder. The driver installs it in one
step: unpacked beside ``trial_dir``, then renamed into place, so a driver killed at any instant leaves either
the old folder or the new one (``recover`` puts the old one back if the kill fell between the two renames).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
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


def stage(data: bytes, study_dir: Path, trial_dir: Path) -> None:
    """Lay ``pack_inputs``'s bytes out at ``study_dir`` on a worker: each study file replaced in one rename (another
    trial of the study may be reading it on this node), the trial's folder replaced whole."""
    study_dir.mkdir(parents=True, exist_ok=True)
    unpacked = Path(tempfile.mkdtemp(prefix=".incoming-", dir=study_dir))
    try:
        unpack(data, unpacked)
        own = unpacked / trial_dir.relative_to(study_dir)
        if own.is_dir():
            install_folder(own, trial_dir)
        for path in unpacked.iterdir():
            if path.is_file():
                os.replace(path, study_dir / path.name)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def reroot(trial_dir: Path, worker_study: str, study: str) -> None:
    """The JSON files a trial wrote name the worker's study folder; make them name the driver's."""
    old, new = json.dumps(worker_study)[1:-1], json.dumps(study)[1:-1]
    for path in trial_dir.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        if old in text:
            temporary = path.with_name(f".{path.name}.reroot")
            temporary.write_text(text.replace(old, new), encoding="utf-8")
            os.replace(temporary, path)


def incoming_dir(trial_dir: Path) -> Path:
    return trial_dir.parent / f".{trial_dir.name}.incoming"


def replaced_dir(trial_dir: Path) -> Path:
    return trial_dir.parent / f".{trial_dir.name}.replaced"


def install(data: bytes, trial_dir: Path, moved: tuple[str, str] | None = None) -> None:
    """Replace ``trial_dir`` by the folder in ``data`` (a superset of it: the worker started from it); with
    ``moved`` (the worker's study folder, the driver's), its JSON files re-rooted before it takes the place."""
    recover(trial_dir)
    incoming = incoming_dir(trial_dir)
    unpack(data, incoming)
    if moved is not None:
        reroot(incoming, *moved)
    install_folder(incoming, trial_dir)


def install_folder(folder: Path, trial_dir: Path) -> None:
    """``folder`` (on the same file system) becomes ``trial_dir``; the old one goes once the new one is in place."""
    replaced = replaced_dir(trial_dir)
    shutil.rmtree(replaced, ignore_errors=True)
    trial_dir.parent.mkdir(parents=True, exist_ok=True)
    if trial_dir.exists():
        os.rename(trial_dir, replaced)
    os.rename(folder, trial_dir)
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
