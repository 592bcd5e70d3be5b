"""The base YAML of ``bbpatch yaml``: where it is, which ultralytics tree measures it, whether it is a model.

The tree is ``--tree PATH`` (resolved like every command's PATH), else the ultralytics package that holds
``--base`` when it is a file inside one (a fork's checkout), else the default tree (./ultralytics, then the
package this Python imports). Nothing here imports torch or ultralytics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bbpatch.engine.tree import Tree, _package_dir, find_tree

SCALE_LETTER = re.compile(r"yolo(e-)?[v]?\d+([nslmx])")


class BadBase(ValueError):
    """The base YAML cannot be found or is not a model YAML: nothing was written."""


@dataclass(frozen=True)
class Base:
    path: Path
    scale: str  # the scale letter of the name ('' without one)
    tree_path: str | None  # --tree as given

    def tree(self) -> Tree:
        """The tree that measures this YAML's layers (resolved when first needed: the table may suffice)."""
        if self.tree_path is not None:
            return find_tree(self.tree_path)
        package = containing_package(self.path) if self.path.is_file() else None
        return find_tree(package)


def containing_package(path: Path) -> Path | None:
    """The ultralytics package a file lies in (or the checkout beside it): a fork's YAML measures in its fork."""
    for directory in Path(path).resolve().parents:
        package = _package_dir(directory)
        if package is not None:
            return package
    return None


def scale_of(name: str) -> str:
    match = SCALE_LETTER.search(Path(name).stem)
    return match.group(2) if match else ""


def locate(base: str, tree_path: str | None = None) -> Base:
    """Resolve 'yolo11n-seg.yaml' (ultralytics' naming: scale letter after the version) or a YAML path."""
    scale = scale_of(base)
    if Path(base).is_file():
        return Base(Path(base), scale, tree_path)
    if Path(base).suffix not in (".yaml", ".yml") or len(Path(base).parts) > 1:
        raise BadBase(f"{base}: no such YAML file")
    models = find_tree(tree_path).file("cfg/models")
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(base).name)  # yolo11n-seg.yaml -> yolo11-seg.yaml
    for name in dict.fromkeys([Path(base).name, unified, unified.replace("u.yaml", ".yaml")]):
        found = sorted(models.rglob(name))
        if found:
            return Base(found[0], scale, tree_path)
    raise BadBase(f"no ultralytics model YAML named {base!r} (looked in {models}); pass a path, or --tree")


def read_model(path: Path) -> dict:
    """The model dict of a YAML file, checked to be one: backbone and head lists of [from, repeats, module, args]."""
    try:
        model = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise BadBase(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise BadBase(f"{path}: not valid YAML{where}") from None
    if not isinstance(model, dict) or not isinstance(model.get("backbone"), list) or not model["backbone"]:
        raise BadBase(f"{path}: not a model YAML (no 'backbone' list of layers)")
    if not isinstance(model.get("head"), list):
        raise BadBase(f"{path}: not a model YAML (no 'head' list of layers)")
    scales = model.get("scales")
    if scales is not None and not (
        isinstance(scales, dict) and all(isinstance(k, str) and isinstance(v, list) for k, v in scales.items())
    ):
        raise BadBase(f"{path}: 'scales' is not a map of scale letters to [depth, width, max_channels]")
    rows = model["backbone"] + model["head"]
    for index, row in enumerate(rows):
        problem = layer_problem(row, index)
        if problem:
            raise BadBase(f"{path}: layer {index} {problem}")
    return model


def layer_problem(row, index) -> str | None:
    if not isinstance(row, list) or len(row) != 4:
        return "is not [from, repeats, module, args]"
    f, n, module, args = row
    froms = [f] if isinstance(f, int) and not isinstance(f, bool) else f
    if not isinstance(froms, list) or not froms or not all(type(x) is int for x in froms):
        return f"has 'from' {f!r}: an index or a list of indices"
    if not all(x == -1 or 0 <= x < index or (x < 0 and index + x >= 0) for x in froms):
        return f"reads {f!r}: not an earlier layer"
    if not isinstance(module, str) or not isinstance(args, list) or type(n) is not int:
        return "is not [from, repeats, module name, args list]"
    return None
