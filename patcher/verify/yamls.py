"""Shipped YAMLs that apply left out because the release lacks their stock model (see ``bbpatch.yaml_bases``)."""

from __future__ import annotations

import re

from bbpatch.catalog import package_dir
from bbpatch.yaml_bases import unbuildable

from .results import SKIP, Result
from .static import SUBJECT, PatchedTree


def shipped_names() -> list[str]:
    return sorted(p.name for p in package_dir("bbpatch.yamls").glob("*.yaml"))


def not_installed(patched: PatchedTree) -> dict[str, str]:
    """``{shipped YAML: the stock YAML this release lacks}`` for the YAMLs not installed in the tree."""
    installed = {path.name for path in patched.yamls()}
    lacking = unbuildable(patched.tree.package, shipped_names())
    return {name: base for name, base in lacking.items() if name not in installed}


def not_installed_results(patched: PatchedTree) -> list[Result]:
    """One skip naming the stock models this release lacks, when apply left shipped YAMLs out; none otherwise."""
    lacking = not_installed(patched)
    if not lacking:
        return []
    bases = ", ".join(sorted(set(lacking.values())))
    detail = (
        f"{len(lacking)} shipped YAMLs not installed: ultralytics {patched.tree.version} has no {bases} "
        "(a newer release builds them)"
    )
    return [Result(SUBJECT, "yamls", SKIP, detail, data={"not_installed": lacking})]


def not_installed_reason(patched: PatchedTree, name: str) -> str | None:
    """Why a ``--yaml`` name that is a shipped YAML (scale letter or not) is not in this tree, or None."""
    lacking = not_installed(patched)
    name = name if name.endswith(".yaml") else f"{name}.yaml"
    name = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)  # ultralytics' scale convention: yolo26n-x -> yolo26-x
    if name not in lacking:
        return None
    return f"{name}: not installed, ultralytics {patched.tree.version} has no {lacking[name]} to build it on"
