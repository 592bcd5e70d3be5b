"""``bbpatch compare``: candidates trained with one recipe, mAP beside latency (``bbpatch.compare``)."""

from __future__ import annotations

import sys

import click
import yaml

from bbpatch.engine.tree import TreeError

EXIT_BAD_INPUT = 2


def names(values) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def train_arguments(values) -> dict | None:
    """``key=value`` pairs, each value read as YAML reads it (``lr0=0.01`` a float, ``optimizer=AdamW`` a str)."""
    if not values:
        return None
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad_input(f"--train {item}: expected key=value, e.g. --train lr0=0.01")
        parsed[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return parsed


def bad_input(message) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def executor_for(name: str, address: str | None):
    if name == "local":
        return None
    from bbpatch.compare.ray_executor import RayExecutor, RayNotInstalled

    try:
        return RayExecutor(address=address)
    except RayNotInstalled as error:
        bad_input(error)


@click.command("compare")
@click.argument("models", nargs=-1)
@click.option("--data", help="The dataset YAML every candidate trains and validates on (it needs a val split).")
@click.option("--families", multiple=True, metavar="HEAD", help="The stock HEAD (e.g. yolov8n) and every shipped "
              "family on that head, as candidates. Repeatable or comma-separated.")  # fmt: skip
@click.option("--epochs", type=click.IntRange(1), help="Training epochs of every trial  [default: 100]")
@click.option("--imgsz", type=click.IntRange(32), help="Train, val and latency image size  [default: 640]")
@click.option("--batch", type=click.IntRange(1), help="Batch size of training and val  [default: 16]")
@click.option("--seeds", type=click.IntRange(1), help="Trials per candidate, seeds 0..K-1  [default: 1]")
@click.option("--train", "train", multiple=True, metavar="KEY=VALUE",
              help="Any other ultralytics train argument, the same for every trial (repeatable).")  # fmt: skip
@click.option("--runtimes", metavar="NAMES", help="Latency runtimes: onnxruntime, openvino, openvino-default "
              "[default: onnxruntime,openvino]")  # fmt: skip
@click.option("--latency-runs", type=click.IntRange(1), help="Timed interleaved rounds (median)  [default: 20]")
@click.option("--out", default="compare", show_default=True, type=click.Path(file_okay=False), help="Study folder.")
@click.option("--resume", type=click.Path(file_okay=False), help="Finish the study in this folder.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True, help="Trials at once.")
@click.option("--device", default="", help="GPUs, one a trial: e.g. 0,1 (default: CPU).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", help="With --executor ray: the cluster (default: a local one).")
@click.option("--tree", type=click.Path(file_okay=False), help="An applied ultralytics tree the trials import "
              "(default: ./ultralytics or this Python's, applied or under bbpatch enable).")  # fmt: skip
def compare_command(models, data, families, epochs, imgsz, batch, seeds, train, runtimes, latency_runs, out,
                    resume, jobs, device, executor, ray_address, tree):  # fmt: skip
    """Train each MODEL with one recipe (ultralytics' trainer, deterministic, --seeds K), validate its best.pt,
    export and time every one in one process; write compare.md/.json/.csv and pareto.png to the study folder.

    MODEL: a shipped YAML by scale (yolov8n-mobilenetv4.yaml), a stock one (yolov8n.yaml), a YAML path, or a
    .pt to fine-tune. Killed at any point, --resume DIR finishes the study without retraining finished trials.
    """
    from bbpatch.compare import StudyError, compare

    recipe = {"epochs": epochs, "imgsz": imgsz, "batch": batch, "seeds": seeds, "train": train_arguments(train),
              "runtimes": names([runtimes]) if runtimes else None, "latency_runs": latency_runs}  # fmt: skip
    try:
        outcome = compare(
            list(models), data, out, families=names(families), recipe=recipe, tree=tree, resume=resume, jobs=jobs,
            devices=tuple(names([device])), executor=executor_for(executor, ray_address),
            say=lambda line: click.echo(f"compare: {line}", err=True),
        )  # fmt: skip
    except (StudyError, TreeError) as error:
        bad_input(error)
    except OSError as error:
        bad_input(f"{error.filename or 'a file'}: {error.strerror or error}")
    click.echo(outcome.files["md"].read_text(encoding="utf-8"))
    click.echo("wrote " + ", ".join(str(p) for p in outcome.files.values()))
    failed = [t for t in outcome.trials if t["status"] != "done"]
    sys.exit(1 if failed else 0)
