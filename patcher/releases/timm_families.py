"""timm's architecture families and the model the timm sweep builds for each: ``python -m
bbpatch.releases.timm_families [FAMILY...]`` prints ``{family: [[model, parameters], ...]}`` as one JSON line.

A family is a ``timm.models`` module with registered models (``timm.list_modules()``). Parameters are counted
on the meta device with every in-place tensor operation skipped: no memory, no weight initialization (which
on the meta device still runs through torch's Python meta kernels, four fifths of a construction's time). A
model that cannot be built on the meta device is left out of its family's list; :func:`choose` picks from
the list. Run in a subprocess by :mod:`bbpatch.releases.timm_sweep`, which caches the answer per timm version.
"""

from __future__ import annotations

import json
import sys

MAX_PARAMETERS = 60_000_000  # the smallest model under this, per family


def meta_parameters(name):
    """Parameters of timm's ``name`` (the classifier model), counted without building any weights."""
    import timm
    import torch
    from torch.overrides import TorchFunctionMode

    class SkipInPlace(TorchFunctionMode):  # weight init fills tensors in place; on meta it only costs time
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name.endswith("_") and not name.endswith("__") and args and getattr(args[0], "is_meta", False):
                return args[0]
            return func(*args, **(kwargs or {}))

    with torch.device("meta"), SkipInPlace():
        model = timm.create_model(name)
    return sum(p.numel() for p in model.parameters())


def family_models(families=None):
    """``{family: [(model, parameters), ...]}``, models in timm's order, for every family (or those named)."""
    import timm

    known = timm.list_modules()
    unknown = sorted(set(families or ()) - set(known))
    if unknown:
        raise KeyError(f"not timm model modules: {', '.join(unknown)} (timm {timm.__version__} has {len(known)})")
    found = {}
    for family in families or known:
        found[family] = []
        for name in timm.list_models(module=family):
            try:
                found[family].append((name, meta_parameters(name)))
            except Exception:  # noqa: S112  (a model timm cannot build even on meta: not a candidate)
                continue
    return found


def choose(models, limit=MAX_PARAMETERS):
    """The smallest model under ``limit`` parameters (ties: the first by name); None when there is none."""
    small = sorted((params, name) for name, params in models if params < limit)
    return (small[0][1], small[0][0]) if small else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        print(json.dumps(family_models(argv or None)))
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
