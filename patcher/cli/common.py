"""What every command shares: exit codes, one-line errors, and how a report is shown."""

from __future__ import annotations

import sys

import click

from bbpatch import api
from bbpatch.disk.transaction import LockedError
from bbpatch.engine.tree import TreeError

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
