"""``bbpatch enable`` and ``bbpatch disable`` (zero-write mode); ``bbpatch.cli`` registers them."""

from __future__ import annotations

import click

from bbpatch.engine.tree import Tree, installed_package


@click.command("enable")
def enable_command():
    """Patch ultralytics in memory at every import, for the environment of this Python: no file of ultralytics
    is written. Installs one .pth file; 'python -m bbpatch enable' does it for another interpreter."""
    from bbpatch.cli.common import run
    from bbpatch.hook import environment

    report = run(environment.enable)
    for line in environment.describe(report):
        click.echo(line)
    click.echo("already enabled: nothing changed" if report.state == "already-enabled" else "enabled")


@click.command("disable")
def disable_command():
    """Remove exactly what 'bbpatch enable' installed: ultralytics imports stock again."""
    from bbpatch.cli.common import run
    from bbpatch.hook import environment

    report = run(environment.disable)
    for line in environment.describe(report)[:1] + ([f"  note: {report.note}"] if report.note else []):
        click.echo(line)
    click.echo("disabled" if report.state == "disabled" else "not enabled: nothing to remove")


def hook_status(tree: Tree):
    """The hook's report when ``tree`` is the ultralytics this Python imports (the only one the hook patches)."""
    package = installed_package()
    if package is None or package.resolve() != tree.package:
        return None
    from bbpatch.hook import environment

    return environment.status()
