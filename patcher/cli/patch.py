"""``bbpatch apply``, ``revert``, ``status`` and ``adopt``: the commands over ``bbpatch.api``."""

from __future__ import annotations

import json
import sys

import click

from bbpatch import api
from bbpatch.adopt.adoption import describe
from bbpatch.cli.common import ADOPT_EXIT, EXIT_USAGE, PATH, STATUS_EXIT, fail, run, show
from bbpatch.disk.transaction import LockedError
from bbpatch.engine.tree import TreeError


@click.command()
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


@click.command()
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


@click.command()
@PATH
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(path, as_json):
    """Report clean (exit 3) / patched (0) / drifted (1) / hand-patched (4)."""
    from bbpatch.cli.hook import hook_status
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


@click.command()
@PATH
@click.option("--dry-run", is_flag=True, help="Print the unified diff; write nothing.")
def adopt(path, dry_run):
    """Take over a tree patched by hand with the blog recipe: your modules and YAMLs keep working (docs/adopt.md)."""
    try:
        report = api.adopt(path, dry_run=dry_run)
    except api.NotAdoptable as error:
        for line in str(error).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(ADOPT_EXIT.get(type(error).__name__, EXIT_USAGE))
    except (TreeError, LockedError, OSError) as error:
        fail(error)
    show(report)
    if dry_run:
        click.echo(report.diff or "(no changes)", nl=False)
        return
    click.echo(f"adopted: the recipe's edits replaced by bbpatch's; {describe(report.adopted['backbones'])}")
