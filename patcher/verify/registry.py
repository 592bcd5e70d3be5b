"""The registry of runtime checks: ``@check`` adds one, in the order they run. ``bbpatch.verify.suite`` loads
every module that registers (the model checks, then the export matrix), so read ``CHECKS`` from there."""

from __future__ import annotations

import dataclasses
from typing import Callable


class Skipped(Exception):
    """The check does not apply to this tree or model; the message says why."""


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    scope: str
    fn: Callable
    needs: tuple = ()  # checks this one builds on; in the same task, one that failed skips this one
    fast: bool = False  # part of ``verify --fast``


CHECKS: list[Check] = []


def check(name, scope, needs=(), fast=False):
    def register(fn):
        CHECKS.append(Check(name, scope, fn, tuple(needs), fast))
        return fn

    return register


def checks_for(scopes, fast=False):
    """Names of the registered checks of the given scopes, in run order."""
    return [c.name for c in CHECKS if c.scope in scopes and (c.fast or not fast)]
