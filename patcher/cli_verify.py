"""``bbpatch verify`` and ``bbpatch bench``; ``bbpatch.cli`` registers these two commands."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from bbpatch.tree import TreeError

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
    "--allow-untested-release",
    "allow_untested",
    is_flag=True,
    help="Pass the release check on an ultralytics release newer or older than bbpatch's tested range "
    "(after an upstream pull that bbpatch has not caught up with); every other check still runs.",
)
def verify_command(path, yamls, fast, as_json, junit, jobs, keep, no_cache, only, allow_untested):
    """Check that a patched tree still works: edits, files, every YAML built, run, trained, saved, fused, exported.

    Exit 0: all passed; 1: a check failed (each failure names the YAML, the check and the error);
    2: the tree is not patched, or a usage error.
    """
    from bbpatch.verify import NotPatched, UnknownCheck, UnknownYaml, report, verify

    progress = Progress()
    try:
        outcome = verify(
            path, yamls=split_names(yamls), fast=fast, jobs=jobs, workdir=keep, use_cache=not no_cache,
            only=split_names(only), allow_untested=allow_untested, on_start=progress.start,
            on_result=progress.advance,
        )  # fmt: skip
    except (NotPatched, UnknownYaml, UnknownCheck, TreeError) as error:
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
def bench_command(path, yamls, imgsz, plot, table, runs, warmup, threads):
    """Parameters, GFLOPs, CPU latency (plain and fused) and GPU latency of each model, as a table and a plot."""
    import os

    from bbpatch import bench
    from bbpatch.verify import NotPatched, UnknownYaml, plan, resolve_yamls, static

    try:
        patched = static.load(path)
        roles = static.bbpatch_roles(patched.tree.package)
        models = [plan.describe(p, roles) for p in resolve_yamls(patched, split_names(yamls))]
    except (NotPatched, UnknownYaml, TreeError) as error:
        usage_error(str(error))
    threads = threads or os.cpu_count() or 1
    with click.progressbar(length=len(models), label="bench", file=sys.stderr) as bar:
        results = bench.run_measurements(
            patched.root, models, imgsz, runs, warmup, threads, on_result=lambda r: bar.update(1)
        )
    markdown = bench.markdown_table(results, imgsz, threads)
    Path(table).write_text(markdown, encoding="utf-8")
    bench.scatter_plot(results, Path(plot), imgsz, threads)
    click.echo(markdown + f"\nwrote {table} and {plot}")
