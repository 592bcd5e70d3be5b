"""A timm backbone stays the network its weights were trained as: ultralytics' init and stride probe leave it
alone, and its ``pretrained`` argument takes every path form a YAML can hold, with one-line errors.

Every ultralytics model constructor ends with ``initialize_weights(model)``, which sets ``eps = 1e-3`` and
``momentum = 0.03`` on every module whose type *is* ``nn.BatchNorm2d`` (and, before 8.4, ``inplace = True`` on
every plain activation). On a pretrained timm backbone the new ``eps`` changes what each BatchNorm computes,
so the features are no longer the downloaded ones (FasterNet-T0 off by 60%). The check is by exact type, so
:func:`keep_as_trained` gives those modules a subclass that computes exactly the same and that the check does
not match: ultralytics' own layers keep its initialization, the backbone keeps timm's.

Releases before 8.3 also run the stride probe (a forward of zeros) with the model in training mode, which moves
every BatchNorm's running statistics: :func:`statistics_kept` runs the backbone's part of it in eval mode, as
later releases do for the whole model.
"""

import contextlib
import os
from pathlib import Path

from torch import nn

REINITIALIZED = (nn.BatchNorm2d, nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU)


def _untouched(cls):
    """``cls`` under the same name, as a module attribute here (so a bare submodule still pickles)."""
    doc = f"torch's {cls.__name__}, as timm built it: ultralytics' initialize_weights matches only the exact type."
    return type(cls.__name__, (cls,), {"__module__": __name__, "__qualname__": cls.__name__, "__doc__": doc})


UNTOUCHED = {cls: _untouched(cls) for cls in REINITIALIZED}
globals().update({cls.__name__: kept for cls, kept in UNTOUCHED.items()})


def keep_as_trained(model):
    """Shield ``model``'s modules from ultralytics' ``initialize_weights``; outputs are unchanged."""
    for module in model.modules():
        kept = UNTOUCHED.get(type(module))
        if kept is not None:
            module.__class__ = kept
    return model


@contextlib.contextmanager
def statistics_kept(model):
    """Run ``model``'s BatchNorm layers in eval mode inside the block: their running statistics stay as loaded."""
    training = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in training:
        m.eval()
    try:
        yield
    finally:
        for m in training:
            m.train()


class PretrainedWeightsError(Exception):
    """Weights that cannot be loaded; the message is one line that says what to do."""


TRUE_WORDS, FALSE_WORDS = {"true"}, {"false", "none", ""}  # quoted in a YAML, or from the command line


def checkpoint(pretrained):
    """``pretrained`` as a YAML or ``bbpatch yaml --pretrained`` writes it: False, True, or the absolute path of
    an existing local file (``~`` expanded, relative to the working directory)."""
    if isinstance(pretrained, (bool, type(None))) or pretrained in (0, 1):  # 0 / 1: what YAMLs before 0.4 took too
        return bool(pretrained)
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    if not isinstance(pretrained, str):
        raise PretrainedWeightsError(f"pretrained must be True, False or a checkpoint path, not {pretrained!r}")
    word = pretrained.strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    path = Path(pretrained).expanduser()
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the working directory {os.getcwd()})"
        raise PretrainedWeightsError(
            f"pretrained checkpoint {pretrained!r} not found{where}: give the path of a local file, or True for "
            "timm's hub weights"
        )
    return str(path.resolve())


def hub_unreachable(timm_name, error):
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return PretrainedWeightsError(
        f"cannot get timm's pretrained weights for {timm_name} (no network and nothing cached: {first_line}); "
        f"download them once on a connected machine, or pass a local file: pretrained: path/to/{timm_name}.pth"
    )
