"""The ``bbpatch`` command: a thin layer over bbpatch.api."""

from __future__ import annotations

import json
import sys

import click

from bbpatch import __version__, api
from bbpatch.transaction import LockedError
from bbpatch.tree import TreeError

EXIT_OK, EXIT_DRIFTED, EXIT_USAGE, EXIT_CLEAN, EXIT_HAND_PATCHED, EXIT_REVERT_REFUSED, EXIT_LOCKED = range(7)
STATUS_EXIT = {"patched": EXIT_OK, "drifted": EXIT_DRIFTED, "clean": EXIT_CLEAN, "hand-patched": EXIT_HAND_PATCHED}
ERROR_EXIT = (
    (api.HandPatched, EXIT_HAND_PATCHED),
    (api.RevertRefused, EXIT_REVERT_REFUSED),
    (LockedError, EXIT_LOCKED),
    (TreeError, EXIT_USAGE),
    (OSError, EXIT_USAGE),  # one the engine did not name itself: still one line, never a traceback
)
ADOPT_EXIT = {"NotRecipePatched": EXIT_CLEAN, "UnknownRecipe": EXIT_HAND_PATCHED, "AlreadyPatched": EXIT_USAGE}
PATH = click.argument("path", required=False, type=click.Path(file_okay=False))


def fail(error: Exception) -> None:
    message = f"{error.filename or 'a file'}: {error.strerror or error}" if isinstance(error, OSError) else error
    click.echo(f"error: {message}", err=True)
    sys.exit(next(code for kind, code in ERROR_EXIT if isinstance(error, kind)))


def run(action, *args, **kwargs) -> api.Report:
    try:
        return action(*args, **kwargs)
    except (TreeError, LockedError, OSError) as error:
        fail(error)


def show(report: api.Report) -> None:
    click.echo(f"tree: {report.tree}")
    for note in report.notes:
        click.echo(f"  note: {note}")
    for problem in report.problems:
        click.echo(f"  problem: {problem}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bbpatch")
def main():
    """Swap the backbone of Ultralytics YOLO / RT-DETR: a reversible, version-aware patch of an ultralytics tree.

    PATH is a checkout containing ultralytics/ or the package directory itself; by default ./ultralytics,
    else the ultralytics package this Python would import.
    """


@main.command()
@PATH
@click.option("--dry-run", is_flag=True, help="Print the unified diff; write nothing.")
def apply(path, dry_run):
    """Patch the tree and install backbone modules and YAMLs into nn/Addmodules."""
    report = run(api.apply, path, dry_run=dry_run)
    show(report)
    if dry_run:
        click.echo(report.diff or "(no changes)", nl=False)
        return
    if report.state == "already-patched":
        click.echo(f"already patched by bbpatch {report.bbpatch}: nothing changed")
        return
    applied = [name for name, state in report.edits.items() if state == "applied"]
    skipped = [name for name, state in report.edits.items() if state == "n/a"]
    click.echo(
        f"{report.state}: {len(applied)} edits applied"
        + (f" ({', '.join(skipped)} not needed here)" if skipped else "")
    )


@main.command()
@PATH
@click.option(
    "--force",
    is_flag=True,
    help="Restore originals even where bbpatch's inserted code was edited (your version is saved beside it).",
)
def revert(path, force):
    """Give back exactly the tree you had before apply."""
    report = run(api.revert, path, force=force)
    show(report)
    click.echo("reverted" if report.state == "reverted" else "not patched: nothing to revert")


@main.command()
@PATH
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(path, as_json):
    """Report clean (exit 3) / patched (0) / drifted (1) / hand-patched (4)."""
    from bbpatch.cli_hook import hook_status
    from bbpatch.hook.environment import describe

    report = run(api.status, path)
    hook = run(hook_status, report.tree)
    if as_json:
        click.echo(json.dumps({**report.as_dict(), **({"hook": hook.as_dict()} if hook else {})}, indent=2))
    else:
        show(report)
        click.echo(report.state + (f" by bbpatch {report.bbpatch}" if report.bbpatch else ""))
        for name, state in report.edits.items():
            click.echo(f"  {name:<20} {state}")
        for line in describe(hook) if hook else ():
            click.echo(line)
    sys.exit(STATUS_EXIT[report.state])


@main.command()
@PATH
@click.option("--dry-run", is_flag=True, help="Print the unified diff; write nothing.")
def adopt(path, dry_run):
    """Take over a tree patched by hand with the blog recipe: your modules and YAMLs keep working (docs/adopt.md)."""
    from bbpatch import adoption

    try:
        report = adoption.adopt(path, dry_run=dry_run)
    except adoption.NotAdoptable as error:
        for line in str(error).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(ADOPT_EXIT.get(type(error).__name__, EXIT_USAGE))
    except (TreeError, LockedError, OSError) as error:
        fail(error)
    show(report)
    if dry_run:
        click.echo(report.diff or "(no changes)", nl=False)
        return
    click.echo(f"adopted: the recipe's edits replaced by bbpatch's; {adoption.describe(report.adopted['backbones'])}")


def _register_commands():
    from bbpatch.cli_git import git_hook_command, git_setup_command, merge_file_command, resolve_command
    from bbpatch.cli_hook import disable_command, enable_command
    from bbpatch.cli_models import list_command, yaml_command
    from bbpatch.cli_verify import bench_command, verify_command

    commands = (yaml_command, list_command, verify_command, bench_command, enable_command, disable_command)
    for command in (*commands, git_setup_command, merge_file_command, resolve_command, git_hook_command):
        main.add_command(command)


_register_commands()
