"""``bbpatch verify`` and ``bbpatch bench``; ``bbpatch.cli`` registers these two commands."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from bbpatch.engine.tree import TreeError

PATH = click.argument("path", required=False, type=click.Path(file_okay=False))
YAMLS = click.option(
    "--yaml", "yamls", multiple=True, metavar="NAME",
    help="Only these YAMLs: shipped names (with or without .yaml), files, or stock names like yolov8n.yaml. "
    "Repeat the option or separate names with commas. Default: every YAML bbpatch shipped.",
)  # fmt: skip


def split_names(values) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def usage_error(message: str, as_json: bool = False):
    from bbpatch.verify import EXIT_USAGE

    if as_json:
        click.echo(json.dumps({"exit_code": EXIT_USAGE, "error": message}, indent=2))
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


class Progress:
    """A progress bar on stderr, advanced once per finished check; one line per check when stderr is a log."""

    def __init__(self):
        self.bar, self.total, self.done = None, 0, 0

    def start(self, total):
        self.total = total
        if sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label="verify", file=sys.stderr, show_pos=True, width=30)
            self.bar.__enter__()

    def advance(self, result):
        self.done += 1
        if self.bar is None:
            click.echo(f"[{self.done}/{self.total}] {result.subject} {result.check}: {result.status}", err=True)
            return
        self.bar.label = f"{result.subject[:28]:<28} {result.check:<14}"
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command("verify")
@PATH
@YAMLS
@click.option("--fast", is_flag=True, help="Static checks and builds only (for pre-commit).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the table.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write the results as JUnit XML to this file.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 32),
    help="Worker processes for the runtime checks (default: CPUs, at most 4).",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    help="Run in this folder and keep it (worker logs, checkpoints, ONNX files).",
)
@click.option(
    "--no-cache", is_flag=True, help="With --fast: rebuild every YAML, even those unchanged since they last built."
)
@click.option(
    "--check",
    "only",
    multiple=True,
    metavar="NAME",
    help="Only these runtime checks (and the ones they need), e.g. --check onnx. Repeatable or comma-separated.",
)
@click.option(
    "--formats",
    metavar="NAMES",
    help="Only prove these export formats (comma-separated: torchscript, onnx, openvino, ncnn, tflite, coreml; "
    "'none' for no exports), e.g. the ones you deploy to. Default: all.",
)
@click.option(
    "--allow-untested-release",
    "allow_untested",
    is_flag=True,
    help="Pass the release check on an ultralytics release newer or older than bbpatch's tested range "
    "(after an upstream pull that bbpatch has not caught up with); every other check still runs.",
)
def verify_command(path, yamls, fast, as_json, junit, jobs, keep, no_cache, only, formats, allow_untested):
    """Check that a patched tree still works: edits, files, every YAML built, run, trained, saved, fused, exported.

    Exit 0: all passed; 1: a check failed (each failure names the YAML, the check and the error);
    2: the tree is not patched, or a usage error.
    """
    from bbpatch.verify import NotPatched, UnknownCheck, UnknownFormat, UnknownYaml, report, verify

    progress = Progress()
    try:
        outcome = verify(
            path, yamls=split_names(yamls), fast=fast, jobs=jobs, workdir=keep, use_cache=not no_cache,
            only=split_names(only), allow_untested=allow_untested,
            formats=None if formats is None else split_names([formats]), on_start=progress.start,
            on_result=progress.advance,
        )  # fmt: skip
    except (NotPatched, UnknownYaml, UnknownCheck, UnknownFormat, TreeError) as error:
        usage_error(str(error), as_json)
    finally:
        progress.close()
    if junit:
        Path(junit).write_text(report.to_junit(outcome), encoding="utf-8")
    if as_json:
        click.echo(report.to_json(outcome))
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        click.echo(report.table(outcome.results, width))
        if outcome.exit_code:
            click.echo("\n" + report.failures(outcome))
        click.echo("\n" + report.summary(outcome))
    sys.exit(outcome.exit_code)


@click.command("bench")
@PATH
@YAMLS
@click.option("--all", "every", is_flag=True, help="Every shipped YAML (default: the deployment set, see below).")
@click.option(
    "--heads", default="yolo26,yolov8", show_default=True, metavar="NAMES",
    help="Without --yaml: the n detection model of every shipped backbone family on these heads "
    "(yolo26, yolo12, yolo11, yolov8, yolov5).",
)  # fmt: skip
@click.option(
    "--stock", default="yolo26n.yaml,yolo11n.yaml,yolov8n.yaml", show_default=True, metavar="NAMES",
    help="Stock models measured beside the chosen ones (comma-separated; '' for none).",
)  # fmt: skip
@click.option("--imgsz", type=click.IntRange(32, 4096), default=640, show_default=True, help="Square input size.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default="bench.png",
    show_default=True,
    help="Scatter plot (PNG) to write.",
)
@click.option(
    "--table", type=click.Path(dir_okay=False), default="bench.md", show_default=True, help="Markdown table to write."
)
@click.option(
    "--runs",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Timed forward passes per model (median).",
)
@click.option("--warmup", type=click.IntRange(0, 100), default=3, show_default=True, help="Untimed passes first.")
@click.option("--threads", type=click.IntRange(1, 256), help="CPU threads for torch (default: all CPUs).")
@click.option("--no-deploy", is_flag=True, help="Only the PyTorch table: no exports, no deployment latency.")
@click.option("--sizes", default="320,640", show_default=True, metavar="PX,...", help="Deployment latency input sizes.")
@click.option(
    "--runtimes", default="onnxruntime,openvino", show_default=True, metavar="NAMES",
    help="Deployment runtimes, timed on 1 thread: onnxruntime, openvino (float32), openvino-default "
    "(the CPU's default precision: bf16 where it has AVX512-BF16), torch (fused PyTorch).",
)  # fmt: skip
@click.option(
    "--formats", default="onnx,openvino", show_default=True, metavar="NAMES",
    help="Exports whose parity and export time are reported (those the runtimes need are always in); "
    "'all': torchscript, onnx, openvino, ncnn, tflite, coreml.",
)  # fmt: skip
@click.option(
    "--latency-runs", type=click.IntRange(1, 1000), default=20, show_default=True,
    help="Deployment latency: timed interleaved rounds (median).",
)  # fmt: skip
@click.option("--jobs", "-j", type=click.IntRange(1, 32), help="Export processes (default: 2, or 1 on one CPU).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write every measurement as JSON.")
def bench_command(path, yamls, every, heads, stock, imgsz, plot, table, runs, warmup, threads, no_deploy, sizes,
                  runtimes, formats, latency_runs, jobs, json_file):  # fmt: skip
    """Parameters, GFLOPs, PyTorch CPU latency (plain and fused) and GPU latency of each model, then each model
    exported to ONNX and OpenVINO (parity and export time) and timed there on 1 CPU thread at 320 and 640,
    beside stock yolo26n, yolo11n and yolov8n; as tables and a plot.

    Default models: the n detection model of every shipped backbone family on the YOLO26 and YOLOv8 heads (12)
    and the stock models (15 in all; about five minutes on 2 CPUs).
    """
    import dataclasses
    import os

    from bbpatch.benchmarks import latency
    from bbpatch.benchmarks import table as bench
    from bbpatch.verify import NotPatched, UnknownYaml, plan, resolve_yamls, target

    try:
        patched = target.load(path)
        roles = patched.roles()
        shipped = {p.name: p for p in patched.yamls()}
        names = bench.model_names(shipped, split_names(yamls), every, split_names([stock]), split_names([heads]))
        resolved = resolve_yamls(patched, names)
        models = [plan.describe(p, roles) for p in resolved]
        export_formats = latency.all_formats() if formats.strip() == "all" else split_names([formats])
        unknown = [f for f in export_formats if f not in latency.all_formats()]
        unknown += [r for r in split_names([runtimes]) if r not in latency.RUNTIME]
        if unknown:
            raise UnknownYaml(f"unknown format or runtime {', '.join(unknown)}")
        deploy_sizes = [int(s) for s in split_names([sizes])]
    except (NotPatched, UnknownYaml, TreeError) as error:
        usage_error(str(error))
    except ValueError:
        usage_error(f"--sizes: not a list of integers: {sizes}")
    threads = threads or os.cpu_count() or 1
    with click.progressbar(length=len(models), label="bench", file=sys.stderr) as bar:
        results = bench.run_measurements(
            patched.root, models, imgsz, runs, warmup, threads, on_result=lambda r: bar.update(1)
        )
    markdown = f"## PyTorch\n\n{bench.markdown_table(results, imgsz, threads)}"
    deployment = None
    if not no_deploy:
        files = {str(p): name for name, p in shipped.items()}  # shipped files go by name: ultralytics finds them
        deployment = latency.run(
            patched.root, [files.get(p, p) for p in resolved], deploy_sizes, split_names([runtimes]),
            export_formats, latency_runs, warmup, jobs, shipped=shipped,
            on_progress=lambda message: click.echo(f"bench: {message}", err=True),
        )  # fmt: skip
        markdown += "\n" + latency.deployment_markdown(deployment)
    Path(table).write_text(markdown, encoding="utf-8")
    bench.scatter_plot(results, Path(plot), imgsz, threads, deployment)
    if json_file:
        data = {"pytorch": [dataclasses.asdict(r) for r in results], "imgsz": imgsz, "threads": threads}
        data["deployment"] = deployment.to_dict() if deployment else None
        Path(json_file).write_text(json.dumps(data, indent=1), encoding="utf-8")
    click.echo(markdown + f"\nwrote {table} and {plot}" + (f" and {json_file}" if json_file else ""))
