"""The git commands: ``git-setup``, ``merge-file`` (the merge driver git runs) and ``resolve``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bbpatch.engine.tree import TreeError
from bbpatch.git import post_merge as githook
from bbpatch.git import repo as gitrepo
from bbpatch.git import resolve
from bbpatch.git import setup as gitsetup
from bbpatch.git.merge import merge_patched

EXIT_OK, EXIT_CONFLICT, EXIT_USAGE = 0, 1, 2


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("git-setup")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--shared", is_flag=True, help="Write .gitattributes (commit it: the whole team merges this way).")
@click.option("--undo", is_flag=True, help="Remove exactly what git-setup added.")
@click.option("--no-hook", is_flag=True, help="No post-merge hook (then run 'bbpatch apply' after a merge yourself).")
def git_setup_command(path, shared, undo, no_hook):
    """Register bbpatch's merge driver, so that merging upstream into a patched fork is clean.

    PATH is the ultralytics package (or a checkout containing it); by default every ultralytics package
    tracked in the repository of the current directory.
    """
    try:
        result = gitsetup.undo(path, shared=shared) if undo else gitsetup.setup(path, shared=shared, hook=not no_hook)
    except TreeError as error:
        _fail(error)
    packages = ", ".join(f"{p}/" if p else "(repository root)" for p in result.packages)
    click.echo(f"repository: {result.repo}  package: {packages}")
    for change in result.changes:
        click.echo(f"  {change}")
    if not result.changes:
        click.echo("nothing to change" if undo else "already set up: nothing changed")
    elif shared and not undo:
        click.echo("commit .gitattributes; each clone runs 'bbpatch git-setup' once for the driver's git config")


@click.command("merge-file")
@click.argument("base", type=click.Path(dir_okay=False, exists=True))
@click.argument("ours", type=click.Path(dir_okay=False, exists=True))
@click.argument("theirs", type=click.Path(dir_okay=False, exists=True))
@click.option("--path", "name", required=True, help="The file's path in the repository (git's %P).")
@click.option("--marker-size", default=7, show_default=True, help="Conflict marker length (git's %L).")
def merge_file_command(base, ours, theirs, name, marker_size):
    """The merge driver: merge BASE and THEIRS into OURS (git's %O %B %A), re-applying bbpatch's edits.

    Exit 0 merged clean; 1 conflicts left in your own lines (or bbpatch's edits could not land); 2 bad input
    (OURS untouched).
    """
    style = resolve.conflict_style(Path.cwd())  # git runs drivers at the work tree root; elsewhere: 'merge'
    sides = [Path(p).read_bytes() for p in (base, ours, theirs)]
    try:
        merged = merge_patched(name, *sides, marker_size=marker_size, style=style)
    except TreeError as error:
        click.echo(f"bbpatch merge driver: {error}; kept your version of {name} and marked it conflicted", err=True)
        sys.exit(EXIT_USAGE)
    Path(ours).write_bytes(merged.data)
    if merged.problem:
        click.echo(f"bbpatch merge driver: {name}: merged without bbpatch's edits: {merged.problem}", err=True)
    elif merged.conflicts:
        click.echo(f"bbpatch merge driver: {name}: {merged.conflicts} conflict(s) in your own lines", err=True)
    sys.exit(EXIT_CONFLICT if merged.conflicts or merged.problem else EXIT_OK)


@click.command("resolve")
@click.argument("path", required=False, type=click.Path(file_okay=False))
def resolve_command(path):
    """Settle a conflicted merge: re-merge each conflicted file bbpatch patches from git's index stages.

    Exit 0 when nothing bbpatch manages is left conflicted (commit then), 1 when something is, 2 bad input.
    """
    try:
        result = resolve.resolve(path)
    except TreeError as error:
        _fail(error)
    click.echo(f"repository: {result.repo}")
    for path_in_repo in result.resolved:
        click.echo(f"  merged and staged: {path_in_repo}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    for problem in result.conflicted:
        click.echo(f"  still conflicted: {problem}")
    for other in result.others:
        click.echo(f"  not bbpatch's: {other} (resolve it as usual)")
    if result.done:
        click.echo("nothing bbpatch manages is left conflicted" + ("; then git commit" if not result.others else ""))
    sys.exit(EXIT_OK if result.done else EXIT_CONFLICT)


@click.command("git-hook", hidden=True)
@click.argument("name", type=click.Choice([gitsetup.HOOK]))
def git_hook_command(name):
    """What the hooks git-setup installs run. Never fails the git command that ran it."""
    try:
        for line in githook.post_merge(gitrepo.toplevel(Path.cwd())):
            click.echo(line, err=True)
    except TreeError as error:
        click.echo(f"bbpatch {name} hook: {error}", err=True)
