"""YAML checks without a build: shipped YAMLs that apply left out because the release lacks their stock model
(see ``bbpatch.models.yaml_bases``), and ``backbone_scales`` names that are no backbone (the runtime builds only the
default scale)."""

from __future__ import annotations

import re

from bbpatch.models.catalog import BACKBONES, package_dir
from bbpatch.models.yaml_bases import unbuildable

from .results import FAIL, SKIP, Result
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


def backbone_scales_results(models, roles: dict) -> list[Result]:
    """A failure per ``backbone_scales`` name that is neither a catalog backbone nor a backbone class in the tree."""
    failures = []
    for model in models:
        for scale, name in model.backbone_scales:
            if name not in BACKBONES and roles.get(name) != "backbone":
                detail = (
                    f"{model.name}: backbone_scales names {name!r} for scale {scale!r}, which is not a backbone "
                    "class in nn/Addmodules; use a name from `bbpatch list`"
                )
                failures.append(Result(model.name, "backbone_scales", FAIL, detail))
    return failures
