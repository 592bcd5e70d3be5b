"""The candidates of a study: shipped YAMLs by ultralytics' scale convention, stock YAMLs, YAML files, ``.pt``
checkpoints, or ``--families HEAD``; each with how it starts (from scratch, an ImageNet backbone, a checkpoint).

Read statically: nothing here imports ultralytics or torch (a candidate that does not build fails its trial).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bbpatch.benchmarks.latency import default_models
from bbpatch.models import catalog

from .study import Candidate, StudyError

SCRATCH, IMAGENET, CHECKPOINT = "scratch", "ImageNet backbone", "checkpoint (.pt)"
HEAD = re.compile(r"^(yolo(?:v\d+|\d+))([nslmx])$")


def unified(name: str) -> str:
    """``yolov8n-mobilenetv4.yaml`` -> ``yolov8-mobilenetv4.yaml``: the file a scaled name loads."""
    return re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)


def family_names(head: str, shipped: dict) -> list[str]:
    """``yolov8n`` -> the stock ``yolov8n.yaml`` and every shipped family's detection model on that head."""
    match = HEAD.match(head.removesuffix(".yaml"))
    if not match:
        raise StudyError(f"--families {head}: not a head and scale such as yolov8n or yolo26s")
    names = default_models(shipped, heads=(match.group(1),), scale=match.group(2))
    if not names:
        raise StudyError(f"--families {head}: no shipped model on the {match.group(1)} head in this tree")
    return [f"{match.group(1)}{match.group(2)}.yaml", *names]


def resolve(names, families, shipped: dict, stock_folder: Path | None) -> list[Candidate]:
    """The candidates, in order, each once. ``shipped``: the tree's shipped YAML names -> files;
    ``stock_folder``: the tree's ``cfg/models`` (where ultralytics finds a stock name)."""
    wanted = list(names) + [n for head in families for n in family_names(head, shipped)]
    if not wanted:
        raise StudyError("no candidates: name models (yolov8n.yaml, yolov8n-mobilenetv4.yaml, a file) or --families")
    candidates, labels = [], set()
    for name in dict.fromkeys(wanted):
        candidate = resolve_one(name, shipped, stock_folder)
        if candidate.name in labels:  # two files of one name: the second is told apart by its folder
            candidate = Candidate(f"{Path(candidate.model).parent.name}-{candidate.name}", candidate.model,
                                  candidate.start)  # fmt: skip
        labels.add(candidate.name)
        candidates.append(candidate)
    return candidates


def resolve_one(name: str, shipped: dict, stock_folder: Path | None) -> Candidate:
    path = Path(name)
    if path.is_file():
        model = str(path.resolve())
        start = CHECKPOINT if path.suffix == ".pt" else start_of(path)
        return Candidate(path.name, model, start)
    if path.suffix == ".pt" or "/" in name:
        raise StudyError(f"{name}: no such file")
    file = shipped.get(unified(name)) or shipped.get(name)
    if file is not None:
        return Candidate(name, name, start_of(Path(file)))
    if stock_folder is not None and not any(stock_folder.rglob(unified(name))):
        known = ", ".join(sorted(shipped)[:6]) + (", ..." if len(shipped) > 6 else "")
        raise StudyError(f"{name}: not a file, nor a YAML bbpatch shipped ({known or 'none'}), nor a stock one")
    return Candidate(name, name, SCRATCH)


def start_of(file: Path) -> str:
    """How a YAML's model starts: an ImageNet backbone when its backbone layer asks for pretrained weights."""
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        first = config["backbone"][0]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return SCRATCH  # unreadable here: ultralytics says why when the trial builds it
    module, args = str(first[2]), list(first[3]) if len(first) > 3 and first[3] else []
    if module == "TimmBackbone":
        return IMAGENET if len(args) > 1 and args[1] not in (False, None, "False") else SCRATCH
    if module in catalog.BACKBONES:
        return IMAGENET if args and args[0] not in (False, None, "False") else SCRATCH
    return SCRATCH
