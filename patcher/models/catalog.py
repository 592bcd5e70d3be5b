"""The whole-backbone names bbpatch ships: timm source, family and output channels, without importing torch.

The table itself lives in ``modules/_catalog.py`` because the module files installed into ultralytics build
their classes from it; this module loads that file directly, so ``bbpatch yaml`` stays torch-free.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Backbone:
    name: str  # the class name a YAML uses
    timm_name: str
    family: str
    channels: tuple  # stride 4, 8, 16, 32
    p1_channels: int | None  # the stride-2 map's, None where the model has none (out_levels from 1 needs it)


def package_dir(package):
    """Folder of a bbpatch subpackage (modules, templates, yamls), editable or installed, without importing it."""
    return Path(next(iter(importlib.util.find_spec(package).submodule_search_locations)))


def _load_table():
    spec = importlib.util.spec_from_file_location(
        "bbpatch._catalog_table", package_dir("bbpatch.modules") / "_catalog.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    return table


_TABLE = _load_table()
BACKBONES = {
    name: Backbone(name, timm, family, _TABLE.TIMM_CHANNELS[timm], _TABLE.TIMM_P1_CHANNELS.get(timm))
    for name, timm, family in _TABLE.BACKBONES
}
FAMILY_DEFAULTS = dict(_TABLE.FAMILY_DEFAULTS)
FAMILY_SCALES = {family: dict(variants) for family, variants in _TABLE.FAMILY_SCALES.items()}
TIMM_CHANNELS = dict(_TABLE.TIMM_CHANNELS)
TIMM_P1_CHANNELS = dict(_TABLE.TIMM_P1_CHANNELS)
MIN_INPUT_SIZE = _TABLE.MIN_INPUT_SIZE


def lookup(name):
    """The catalog entry for a backbone name; KeyError with close matches when it is unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        close = difflib.get_close_matches(name, BACKBONES, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown backbone {name!r}.{hint} A family (variant by scale letter): {', '.join(FAMILY_SCALES)}. "
            "Any other timm model: 'timm:<model name>'."
        ) from None
