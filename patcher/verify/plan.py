"""Which checks run on which YAML, in which worker pool: the task list the orchestrator executes.

- every YAML: the ``model`` checks (``--fast``: only the fast ones);
- the family representatives and the ONNX samples below, which together hold every backbone family and every
  head: the ``covering`` checks (GFLOPs, fusion), whose outcome the modules a model is made of decide;
- one YAML per backbone family (its representative): the ``pretrained`` check (its backbone from a local
  checkpoint against timm's own model) in a task of its own; the ``family`` checks (training) in a task of their
  own, then its checkpoint is loaded in two fresh processes, plainly and with ``ULTRALYTICS_SAFE_LOAD=1``;
  and the ``export`` checks (the export matrix) on the calibrated model its ``forward_eval`` saved: the
  formats of the verify venv in a main-pool task, TFLite and CoreML in a pool of their own whose workers
  run in that format's venv and export the families in turn;
- a few more YAMLs so that, with the representatives' ONNX exports, every backbone family and every head
  is exported to ONNX: the ``sample`` checks, too slow to repeat for 80 YAMLs that share backbones and heads;
- one backbone YAML: the distributed smoke test;
- the stock YAML: built in an unpatched copy and in the patched tree, compared.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import yaml

from bbpatch.models import catalog

from .exports import FORMATS, isolated_python
from .suite import CHECKS, checks_for

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it: 10x faster

STOCK_YAML = "yolov8n.yaml"
MAIN, LOAD, SAFE_LOAD, UNPATCHED = "main", "load", "safe_load", "unpatched"


@dataclasses.dataclass
class Task:
    id: str
    subject: str
    yaml: str
    checks: list
    pool: str = MAIN
    inputs: dict = dataclasses.field(default_factory=dict)
    after: str | None = None  # a task whose outputs this one needs
    takes: tuple = ()  # the output keys of ``after`` copied into ``inputs``

    def message(self) -> dict:
        return {"id": self.id, "subject": self.subject, "yaml": self.yaml, "checks": self.checks, "inputs": self.inputs}


@dataclasses.dataclass(frozen=True)
class ModelYaml:
    path: str  # a file, or a name ultralytics resolves (stock YAMLs)
    kind: str  # "yolo" or "rtdetr"
    task: str  # "detect", "segment", "pose", "obb"
    family: str  # the backbone family: one training run each
    head: str = ""  # the head's layer types: one full GFLOPs profile and ONNX export per family and per head
    backbone_scales: tuple = ()  # (scale letter, backbone name) pairs of the YAML's backbone_scales key

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def inputs(self) -> dict:
        return {"kind": self.kind, "task": self.task}


HEAD_TASKS = (("segment", "segment"), ("pose", "pose"), ("obb", "obb"), ("detect", "detect"), ("rtdetr", "detect"))


def head_task(head_module: str) -> str:
    """The task of a model from its output module, as ultralytics' guess_model_task reads it."""
    name = head_module.lower()
    return next((task for mark, task in HEAD_TASKS if mark in name), "detect")


def describe(path: str, roles: dict | None = None) -> ModelYaml:
    """Kind, task and backbone family of a YAML, read statically (no ultralytics import).

    ``roles`` maps the bbpatch class names found in the tree to 'backbone' or 'block'. A stock name
    (``yolov8n.yaml``, no file) is described from the name alone.
    """
    file = Path(path)
    if not file.is_file():
        stem = file.stem
        task = "segment" if "-seg" in stem else "pose" if "-pose" in stem else "obb" if "-obb" in stem else "detect"
        return ModelYaml(path, "rtdetr" if "rtdetr" in stem else "yolo", task, "stock")
    config = yaml.load(file.read_text("utf-8"), Loader=SafeLoader)
    output = str(config["head"][-1][2])
    layers = " ".join(str(layer[2]) for layer in config["head"])
    kind = "rtdetr" if output == "RTDETRDecoder" else "yolo"
    raw = config.get("backbone_scales") or {}
    scales = tuple((str(k), str(v)) for k, v in raw.items()) if isinstance(raw, dict) else (("*", str(raw)),)
    return ModelYaml(path, kind, head_task(output), family(config, roles or {}), layers, scales)


def family(config: dict, roles: dict) -> str:
    """The catalog family of a whole backbone (``mobilenetv4``), its class name, or the bbpatch blocks it is made of."""
    first = config["backbone"][0]
    name, args = str(first[2]), first[3] if len(first) > 3 else []
    if name in catalog.BACKBONES:
        return catalog.BACKBONES[name].family
    if name == "TimmBackbone" and args:
        return f"timm:{args[0]}"
    if roles.get(name) == "backbone":
        return name
    blocks = sorted({str(layer[2]) for layer in config["backbone"] if roles.get(str(layer[2])) == "block"})
    return "+".join(blocks) or "stock"


def representatives(models: list[ModelYaml]) -> list[ModelYaml]:
    """One YAML per family to train: the first YOLO detection model, else the first detection model, else the first."""
    preference = sorted(models, key=lambda m: (m.task != "detect", m.kind != "yolo"))
    chosen = {}
    for m in preference:
        chosen.setdefault(m.family, m)
    return [m for m in models if m in chosen.values()]


def has_timm_backbone(model: ModelYaml) -> bool:
    """A whole backbone from timm (a catalog family or TimmBackbone): one that takes pretrained weights."""
    return model.family in catalog.FAMILY_DEFAULTS or model.family.startswith("timm:")


def lightest(models: list[ModelYaml]) -> ModelYaml | None:
    """The model whose backbone family has the fewest channels in bbpatch's catalog (a cheap proxy for cost)."""
    widths = {b.family: sum(b.channels) for b in reversed(list(catalog.BACKBONES.values()))}
    return min(models, key=lambda m: widths.get(m.family, float("inf")), default=None)


def samples(models: list[ModelYaml], covered: list[ModelYaml] = ()) -> list[ModelYaml]:
    """A few YAMLs that, with the ``covered`` ones (exported to ONNX anyway), cover every backbone family and head.

    First the YAMLs that bring both a new family and a new head, then any that bring either.
    """
    picked, families, heads = [], {m.family for m in covered}, {m.head for m in covered}
    for need_both in (True, False):
        for m in models:
            new_family, new_head = m.family not in families, m.head not in heads
            if m not in picked and ((new_family and new_head) or (not need_both and (new_family or new_head))):
                picked.append(m)
                families.add(m.family)
                heads.add(m.head)
    return picked


def with_needs(names) -> set:
    """The named checks and every check they need, transitively."""
    needs = {c.name: c.needs for c in CHECKS}
    todo, found = list(names), set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(needs.get(name, ()))
    return found


def restricted(tasks: list[Task], only) -> list[Task]:
    """Tasks cut down to the ``only`` checks (and what they need); tasks left empty are dropped."""
    keep = with_needs(only)
    for task in tasks:
        task.checks = [c for c in task.checks if c in keep]
    return [t for t in tasks if t.checks]


def export_pools(only=(), formats=None) -> dict:
    """``{format: pool}`` for the export checks in the plan (``formats``: the names to prove, None for all): a
    venv format whose interpreter exists gets a pool of its own (workers in that venv); the others run in
    the main pool (a missing venv fails there)."""
    keep = with_needs(only) if only else None
    chosen = [f for f in FORMATS if (formats is None or f.name in formats) and (keep is None or f.check_name in keep)]
    return {f: (f.name if f.venv and isolated_python(f) else MAIN) for f in chosen}


def plan(
    models: list[ModelYaml], fast: bool = False, stock: str | None = STOCK_YAML, only=(), formats=None
) -> list[Task]:
    """The tasks; ``formats`` limits the export checks (the matrix and the ONNX samples) to these format names."""
    tasks = []
    chosen = [] if fast else representatives(models)
    pools = {} if fast else export_pools(only, formats)
    onnx_exported = [m for m in chosen if any(f.name == "onnx" for f in pools)]
    sampled = [] if fast else samples(models, onnx_exported)
    covering = chosen + [m for m in sampled if m not in chosen]  # every family and every head, once or so
    onnx_sampled = sampled if formats is None or "onnx" in formats else []
    ddp_model = lightest([m for m in chosen if m.task == "detect" and m.family != "stock"])
    for i, m in enumerate(models):
        checks = checks_for({"model"}, fast=fast)
        if m in covering:
            checks += checks_for({"covering"})
        if m in onnx_sampled:
            checks += checks_for({"sample"})
        if m is ddp_model:
            checks += checks_for({"once"})
        tasks.append(Task(f"m{i}", m.name, m.path, checks, inputs={**m.inputs, "fast": fast}))
    for i, m in enumerate(chosen):
        model_id = next(t.id for t in tasks if t.yaml == m.path)
        tasks.append(Task(f"train{i}", m.name, m.path, checks_for({"family"}), MAIN, dict(m.inputs), model_id))
        if has_timm_backbone(m):
            tasks.append(Task(f"pretrained{i}", m.name, m.path, checks_for({"pretrained"}), MAIN, dict(m.inputs)))
        for pool in (LOAD, SAFE_LOAD):
            tasks.append(
                Task(f"{pool}{i}", m.name, m.path, checks_for({pool}), pool, dict(m.inputs), f"train{i}",
                     ("checkpoint", "imgsz"))
            )  # fmt: skip
        for pool in dict.fromkeys(pools.values()):
            checks = [f.check_name for f, p in pools.items() if p == pool]
            inputs = {**m.inputs, "in_venv": pool != MAIN}
            tasks.append(
                Task(f"{pool}-x{i}", m.name, m.path, checks, pool, inputs, model_id, ("export_model", "imgsz"))
            )
    if stock and not fast:
        inputs = describe(stock).inputs
        tasks.append(Task("ref", stock, stock, checks_for({"reference"}), UNPATCHED, dict(inputs)))
        tasks.append(Task("parity", stock, stock, checks_for({"stock"}), MAIN, dict(inputs), "ref", ("reference",)))
    tasks = restricted(tasks, only) if only else tasks
    exporting = {t.after for t in tasks if "export_model" in t.takes}
    for task in tasks:
        if task.id in exporting:
            task.inputs["keep_model"] = True  # forward_eval saves the calibrated model for the export tasks
    return order_by_cost(tasks)


COST = {"train": 12, "ddp": 4, "onnx": 2, "export_openvino": 4, "export_ncnn": 3, "export_tflite": 10,
        "export_coreml": 3, "pretrained": 3, "gflops": 0.5, "gflops_full": 0.5, "forward_eval": 0.2,
        "strides": 0}  # fmt: skip


def cost(task: Task) -> float:
    """Rough seconds on a small model; other checks about 1."""
    return sum(COST.get(c, 1) for c in task.checks)


def order_by_cost(tasks: list[Task]) -> list[Task]:
    """Longest chain first: a task's priority is its cost plus the longest chain of tasks waiting on it, so a
    representative's model checks (which its training, checkpoint loading and exports wait for) go first,
    then the longest tasks, so that the workers finish together. A worker takes the first task it can run."""
    waiting = {}
    for t in tasks:
        waiting.setdefault(t.after, []).append(t)

    @functools.cache
    def chain(task_id: str) -> float:
        task = next(t for t in tasks if t.id == task_id)
        return cost(task) + max((chain(t.id) for t in waiting.get(task_id, ())), default=0)

    return sorted(tasks, key=lambda t: -chain(t.id))
