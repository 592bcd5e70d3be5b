"""One trial in a process of its own: ``python -m bbpatch.compare.trial STUDY TRIAL_ID``.

ultralytics' own trainer trains the candidate with the study's recipe and the trial's seed (resuming from the
trial's ``last.pt`` with ultralytics' ``resume`` when a run was interrupted); ultralytics' validator validates
``best.pt`` on the data's val split, as ``YOLO(best.pt).val(data=..., imgsz=..., batch=...)`` does; then the
model is exported to the formats the study's runtimes run (``bbpatch.verify.exports``: ultralytics' exporter,
loaded back and compared with the fused PyTorch model). Each phase leaves a file (``trained.json``,
``val.json``, ``exports.json``) so a killed trial redoes only the phase it was in; ``result.json`` comes last.
Everything is written under the trial's folder; the study file is only read.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from .study import DEVICE_VARIABLE, DONE, FAILED, Study, read_json, write_json

METRIC_SUFFIX = {"segment": "M", "pose": "P"}  # the task's own mAP; box (B) for detect and obb


class Trial:
    def __init__(self, study: Study, trial_id: str):
        self.study, self.id = study, trial_id
        self.entry = study.trials[trial_id]
        self.candidate = study.candidate(self.entry["model"])
        self.recipe = study.recipe
        self.folder = study.trial_dir(trial_id)
        self.device = os.environ.get(DEVICE_VARIABLE, "cpu")

    @property
    def weights(self) -> Path:
        return self.folder / "train" / "weights"

    def progress(self, phase: str, **extra) -> None:
        write_json(self.folder / "progress.json", {"phase": phase, "time": time.time(), **extra})

    def wrapper(self, model: str):
        import ultralytics

        return ultralytics.RTDETR(model) if "rtdetr" in Path(model).name.lower() else ultralytics.YOLO(model)

    # ------------------------------------------------------------ train

    def train(self) -> dict:
        marker = self.folder / "trained.json"
        if marker.is_file():
            return read_json(marker)
        last = self.weights / "last.pt"
        state = checkpoint_state(last, self.recipe.epochs)
        resumed_from = None
        if state == "resumable":
            model = self.wrapper(str(last))
            resumed_from = self.epoch_times().__len__()
            self.watch_epochs(model)
            model.train(resume=True, device=self.device)
        elif state != "finished":
            model = self.wrapper(self.candidate.model)
            self.watch_epochs(model)
            args = self.recipe.train_args(self.entry["seed"])
            model.train(**args, project=str(self.folder), name="train", exist_ok=True, device=self.device)
        best = self.weights / "best.pt"
        if not best.is_file():
            raise RuntimeError(f"ultralytics' trainer wrote no {best}")
        times = self.epoch_times()
        trained = {"weights": str(best), "epochs": self.recipe.epochs, "resumed_from_epoch": resumed_from,
                   "train_s_per_epoch": sum(times.values()) / len(times) if times else None}  # fmt: skip
        write_json(marker, trained)
        return trained

    def epoch_times(self) -> dict:
        file = self.folder / "epochs.json"
        return read_json(file) if file.is_file() else {}

    def watch_epochs(self, model) -> None:
        """Each epoch's wall time (training and its validation) kept in ``epochs.json``, and the progress file."""
        started = {}

        def on_start(trainer):
            started["t"] = time.perf_counter()

        def on_end(trainer):
            if trainer.epoch >= trainer.epochs:  # ultralytics' final validation of best.pt, not an epoch
                return
            times = self.epoch_times()
            times[str(trainer.epoch)] = time.perf_counter() - started.get("t", time.perf_counter())
            write_json(self.folder / "epochs.json", times)
            self.progress("train", epoch=trainer.epoch + 1, epochs=trainer.epochs, seconds=times[str(trainer.epoch)])

        model.add_callback("on_train_epoch_start", on_start)
        model.add_callback("on_fit_epoch_end", on_end)

    # ------------------------------------------------------------ validate

    def validate(self, weights: str) -> dict:
        marker = self.folder / "val.json"
        if marker.is_file():
            return read_json(marker)
        self.progress("val")
        model = self.wrapper(weights)
        r = self.recipe
        metrics = model.val(data=r.data, imgsz=r.imgsz, batch=r.batch, device=self.device, plots=False,
                            project=str(self.folder), name="val", exist_ok=True)  # fmt: skip
        values = {k: float(v) for k, v in metrics.results_dict.items()}
        s = METRIC_SUFFIX.get(model.task, "B")
        result = {"task": model.task, "metrics": values, "map50_95": values[f"metrics/mAP50-95({s})"],
                  "map50": values[f"metrics/mAP50({s})"], "precision": values[f"metrics/precision({s})"],
                  "recall": values[f"metrics/recall({s})"]}  # fmt: skip
        write_json(marker, result)
        return result

    # ------------------------------------------------------------ export

    def export(self, weights: str, task: str) -> dict:
        marker = self.folder / "exports.json"
        if marker.is_file():
            return read_json(marker)
        self.progress("export")
        from types import SimpleNamespace

        from ultralytics.utils.torch_utils import get_flops

        from bbpatch.benchmarks.latency import RUNTIME, Export, one_line
        from bbpatch.verify import exports
        from bbpatch.verify.checks import output_error, sample_input

        model = self.wrapper(weights).model.float().eval()
        imgsz = self.recipe.imgsz
        kind = "rtdetr" if "rtdetr" in type(model).__name__.lower() else "yolo"
        result = {"name": self.id, "path": weights, "kind": kind, "task": task,
                  "params": sum(p.numel() for p in model.parameters()),
                  "gflops": {str(imgsz): float(get_flops(model, imgsz))}, "exports": []}  # fmt: skip
        x = sample_input(imgsz)
        reference = exports.fused_reference(model, x)
        formats = dict.fromkeys(RUNTIME[r].format for r in self.recipe.runtimes if RUNTIME[r].format)
        for name in formats:
            fmt = exports.BY_NAME[name]
            record = Export(name, imgsz, budget=fmt.budget)
            ctx = SimpleNamespace(inputs={"kind": kind, "task": task}, state={"model": model, "input": x},
                                  workdir=self.folder / "export", stem=self.id.replace("@", "-"))  # fmt: skip
            try:
                out = exports.exported(fmt, ctx)
                record.path, record.export_s = out["path"], out["export_s"]
                if "output" in out and out["output"].shape == reference.shape:
                    record.relative_error = output_error(ctx, reference, out["output"])
            except Exception as e:  # a format failing is a cell of the table, not the end of the trial
                record.error = one_line(e)
            result["exports"].append(dataclasses.asdict(record))
        write_json(marker, result)
        return result

    # ------------------------------------------------------------ all of it

    def run(self) -> dict:
        self.folder.mkdir(parents=True, exist_ok=True)
        base = {"trial": self.id, "model": self.candidate.name, "seed": self.entry["seed"],
                "start": self.candidate.start}  # fmt: skip
        try:
            trained = self.train()
            val = self.validate(trained["weights"])
            exported = self.export(trained["weights"], val["task"])
        except Exception as e:
            from bbpatch.benchmarks.latency import one_line

            return {**base, "status": FAILED, "reason": one_line(e)}
        keep = {k: exported[k] for k in ("params", "gflops", "exports", "kind", "task")}
        return {**base, "status": DONE, "reason": "", **trained, **val, **keep}


def checkpoint_state(last: Path, epochs: int) -> str:
    """``last.pt``: "missing", "resumable" (an interrupted run), "finished" (stripped, or its last epoch saved),
    or "unreadable" (killed while ultralytics wrote it: the trial starts over)."""
    if not last.is_file():
        return "missing"
    import torch

    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
    except Exception:
        return "unreadable"
    if ckpt.get("optimizer") is None or ckpt.get("epoch", -1) + 1 >= epochs:
        return "finished"
    return "resumable"


def main(argv=None) -> int:
    study_dir, trial_id = argv if argv is not None else sys.argv[1:3]
    study = Study.load(Path(study_dir))
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    trial = Trial(study, trial_id)
    result = trial.run()
    write_json(trial.folder / "result.json", result)
    trial.progress("done" if result["status"] == DONE else "failed")
    return 0 if result["status"] == DONE else 1


if __name__ == "__main__":
    sys.exit(main())
