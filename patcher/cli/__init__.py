"""The ``bbpatch`` command: one thin module per command group, over ``bbpatch.api`` and the rooms' own faces.

``common`` holds the exit codes and the one-line error; ``patch`` has apply / revert / status / adopt; ``git``,
``hook``, ``models`` and ``verify`` the rest. This module builds the group and registers every command.
"""

from __future__ import annotations

import click

from bbpatch import __version__
from bbpatch.cli.common import (  # noqa: F401  (the names bbpatch.cli had before 0.4)
    ADOPT_EXIT,
    ERROR_EXIT,
    EXIT_CLEAN,
    EXIT_DRIFTED,
    EXIT_HAND_PATCHED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_REVERT_REFUSED,
    EXIT_USAGE,
    PATH,
    STATUS_EXIT,
    fail,
    run,
    show,
)
from bbpatch.cli.compare import compare_command
from bbpatch.cli.git import git_hook_command, git_setup_command, merge_file_command, resolve_command
from bbpatch.cli.hook import disable_command, enable_command
from bbpatch.cli.models import list_command, yaml_command
from bbpatch.cli.patch import adopt, apply, revert, status
from bbpatch.cli.verify import bench_command, verify_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bbpatch")
def main():
    """Swap the backbone of Ultralytics YOLO / RT-DETR: a reversible, version-aware patch of an ultralytics tree.

    PATH is a checkout containing ultralytics/ or the package directory itself; by default ./ultralytics,
    else the ultralytics package this Python would import.
    """


COMMANDS = (apply, revert, status, adopt, yaml_command, list_command, verify_command, bench_command, compare_command)
COMMANDS += (enable_command, disable_command, git_setup_command, merge_file_command, resolve_command, git_hook_command)
for command in COMMANDS:
    main.add_command(command)
