"""The runtime checks, one small function each, registered in ``CHECKS`` in the order they run.

Importing this module is cheap (no torch): the orchestrator reads the registry to plan the work, and
only the worker process (``bbpatch.verify.runtime``) calls the functions, with the target tree first on
``sys.path``. A check returns a one-line detail on success (or ``(detail, data)`` with measured values),
raises ``Skipped`` when it does not apply, and raises anything else to fail.

Scopes: ``model`` runs for every YAML; ``covering`` (GFLOPs and fusion: slower, and decided by the modules
a model is made of) for the few YAMLs that together hold every backbone family and every head (the family
representatives, then ``sample``); ``sample`` (ONNX) for those that bring a family or a head the export
matrix does not export; ``family`` (training), ``pretrained`` (a local checkpoint against timm's own model)
and ``export`` (the export matrix) for one YAML per backbone family; ``once`` for one backbone YAML;
``reference`` and ``stock`` for the stock YAML in the unpatched copy and in the tree; ``load`` and
``safe_load`` in the fresh checkpoint-loading processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from pathlib import Path

from .registry import CHECKS, Check, Skipped, check, checks_for  # noqa: F401  (checks.CHECKS before 0.4)

# Relative to each output channel's largest magnitude (at least 1). fuse() is compared in float64, where folding
# MobileOne's branches is exact to ~4e-12 (in float32 it costs up to 2e-2 on random calibrated weights);
# releases whose fusion cannot run in float64 are compared in float32 with the looser tolerance.
FUSE_TOLERANCE = 1e-6
FUSE_TOLERANCE_FLOAT32 = 5e-2
# onnxruntime against the exporter's own (fused) PyTorch model, both float32: MobileOne's folded convs
# carry large weights on random calibrated inputs, and the two runtimes' kernels then differ by up to 5e-3.
# A broken export is off by O(1).
ONNX_TOLERANCE = 1e-2
PARITY_TOLERANCE = 1e-6
GFLOPS_TOLERANCE = 0.01
FULL_IMGSZ = 640  # the size ultralytics reports GFLOPs at
ONNX_MISSING = "onnx/onnxruntime not installed: pip install 'bbpatch[onnx]'"


@dataclasses.dataclass
class Context:
    """What a check sees: its task, a scratch folder, the synthetic dataset, and state left by earlier checks."""

    subject: str  # the YAML name users see
    yaml: str  # path of the YAML, or a stock name ultralytics resolves
    inputs: dict  # from the orchestrator: kind ('yolo'/'rtdetr'), checkpoint, reference file ...
    workdir: Path
    data: Path  # data.yaml of the synthetic dataset
    imgsz: int
    state: dict = dataclasses.field(default_factory=dict)
    outputs: dict = dataclasses.field(default_factory=dict)  # handed back to the orchestrator with the result

    @property
    def stem(self):
        return Path(self.yaml).stem


# ---------------------------------------------------------------- helpers


MODEL_CLASSES = {"detect": "DetectionModel", "segment": "SegmentationModel", "pose": "PoseModel", "obb": "OBBModel"}


def model_class(inputs):
    """The ultralytics model class for a task's ``kind`` ('yolo'/'rtdetr') and ``task`` ('detect', 'segment' ...)."""
    from ultralytics.nn import tasks

    if inputs.get("kind") == "rtdetr":
        return tasks.RTDETRDetectionModel
    return getattr(tasks, MODEL_CLASSES[inputs.get("task", "detect")])


def wrapper_class(kind):
    import ultralytics

    return ultralytics.RTDETR if kind == "rtdetr" else ultralytics.YOLO


def tensors_in(out):
    """Every tensor in a nested model output (tuples, lists, dicts)."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in tensors_in(o)]
    return []


def predictions(out):
    """The decoded prediction tensor of an eval-mode forward: ``(y, raw)`` gives ``y``."""
    while isinstance(out, (list, tuple)):
        out = out[0]
    return out


def channel_scaled(a, b, dim):
    """Both outputs divided by each channel's largest magnitude in ``a``, or by 1 when that is smaller.

    Boxes and keypoints (pixels) are so compared relatively, scores and normalized boxes (0..1) absolutely:
    a channel of near-zero scores must not turn float32 noise into a large relative error.
    """
    others = [d for d in range(a.dim()) if d != dim % a.dim()]
    scale = a.double().abs().amax(dim=others, keepdim=True).clamp(min=1.0)
    return a.double() / scale, b.double() / scale


def output_error(ctx, expected, got):
    """Largest difference of two eval outputs, relative to each output channel's own scale (see channel_scaled).

    YOLO outputs are (batch, channels, anchors); RT-DETR's are (batch, queries, channels), and its top-k
    query selection may order tied queries differently (ONNX Runtime against PyTorch), so each query is
    compared with its nearest counterpart.
    """
    import torch

    if ctx.inputs.get("kind") == "rtdetr":
        a, b = channel_scaled(expected, got, -1)
        return float(torch.cdist(a, b, p=float("inf")).amin(-1).amax())
    a, b = channel_scaled(expected, got, 1)
    return float((a - b).abs().max())


def sample_input(imgsz, batch=1, seed=0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, imgsz, imgsz, generator=generator)


def assert_finite(tensors, what):
    import torch

    assert tensors, f"{what} returned no tensors"
    bad = [tuple(t.shape) for t in tensors if not torch.isfinite(t).all()]
    assert not bad, f"{what} returned non-finite values in tensors of shape {bad}"


def backbone_layer(model):
    """Layer 0 when it is a whole backbone (the patched parse_model marks it), else None."""
    first = model.model[0]
    return first if getattr(first, "backbone", False) else None


def bbpatch_modules(model):
    return [m for m in model.modules() if getattr(type(m), "bbpatch_role", None)]


def probe_size(model):
    """The forward-check size: 128 px unless a backbone needs more."""
    sizes = [getattr(m, "min_input_size", 0) for m in model.modules()]
    return max([128, *sizes])


def eval_predictions(model, x):
    import torch

    model.eval()
    with torch.no_grad():
        return predictions(model(x))


# ---------------------------------------------------------------- per model


RANDOM_FILLS = (
    "uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
    "xavier_normal_", "orthogonal_",
)  # fmt: skip


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pairs(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def shape_only_conv2d(conv2d):
    """``F.conv2d`` for a --fast build: a tensor of the output's shape holding the bias, without the arithmetic.

    That is what the convolution computes on the zero weights ``fast_build`` writes (timm draws some of its own
    weights, whose values no --fast check reads either). Inputs the real convolution would refuse (wrong
    channels, a kernel larger than the padded input) go to it, for its error.
    """

    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if input.dim() < 3 or input.shape[-3] != weight.shape[1] * groups:
            return conv2d(input, weight, bias, stride, padding, dilation, groups)
        if padding == "same":
            size = tuple(input.shape[-2:])  # torch allows "same" only with stride 1
        else:
            padding = (0, 0) if padding == "valid" else pairs(padding)
            size = tuple(map(conv_output_size, input.shape[-2:], weight.shape[-2:], pairs(stride), padding,
                             pairs(dilation)))  # fmt: skip
        if min(size) < 1:
            return conv2d(input, weight, bias, stride, padding, dilation, groups)
        out = input.new_zeros(*input.shape[:-3], weight.shape[0], *size)
        return out if bias is None else out + bias.view(-1, 1, 1)

    return conv


def shape_only_batch_norm(batch_norm):
    """``F.batch_norm`` for a --fast build: its input, which has the output's shape, without the arithmetic
    (the values of a --fast build are read by no check). Inputs the real one would refuse go to it, for its
    error: channels the statistics do not match, one value per channel in training mode."""

    def norm(input, running_mean, running_var, weight=None, bias=None, training=False, *args, **kwargs):
        channels = [t.numel() for t in (running_mean, running_var, weight, bias) if t is not None]
        one_value = training and input.dim() >= 2 and input.numel() == input.shape[1]
        if input.dim() < 2 or one_value or any(c != input.shape[1] for c in channels):
            return batch_norm(input, running_mean, running_var, weight, bias, training, *args, **kwargs)
        return input

    return norm


def zeroed_parameters(conv):
    """``reset_parameters`` of a convolution in a --fast build: the zeros its replaced fills would write."""
    import torch

    with torch.no_grad():
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()


RANDOM_DRAWS = ("normal_", "uniform_")  # the tensor methods timm's own initializers draw with


@contextlib.contextmanager
def replaced(owner, name, value):
    """``owner.name`` is ``value`` inside the block, then what it was (an inherited attribute: inherited again)."""
    own = vars(owner)
    had, saved = name in own, own.get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, saved)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def fast_build():
    """For ``verify --fast``, whose only check is the build: construction without work no check looks at.

    torch.nn.init's random fills, and the tensors' own random draws that timm's initializers call, write zeros
    (about 20% of a build's CPU: every conv is filled by torch, then often again by timm), and a convolution's
    ``reset_parameters`` writes them without computing the bounds of the draws it no longer makes; autograd is
    off (the stride probe's forward records no graph); and the stride probe's convolutions and batch norms
    produce their output's shape, not its values (``shape_only_conv2d``: a quarter of a build's CPU;
    ``shape_only_batch_norm``: 3%). A build check is about
    structure (layers, channels, strides), never weight values or gradients; code that calls the fills still
    runs, every other layer of the probe runs for real, and the full verify builds exactly as training does.
    """
    import torch
    import torch.nn.functional as F

    def zeros(tensor, *args, **kwargs):
        with torch.no_grad():
            return tensor.zero_()

    with contextlib.ExitStack() as stack:
        for name in RANDOM_FILLS:
            stack.enter_context(replaced(torch.nn.init, name, zeros))
        for name in RANDOM_DRAWS:
            stack.enter_context(replaced(torch.Tensor, name, zeros))
        stack.enter_context(replaced(torch.nn.modules.conv._ConvNd, "reset_parameters", zeroed_parameters))
        stack.enter_context(replaced(F, "conv2d", shape_only_conv2d(F.conv2d)))
        stack.enter_context(replaced(F, "batch_norm", shape_only_batch_norm(F.batch_norm)))
        stack.enter_context(torch.no_grad())
        yield


@check("build", "model", fast=True)
def build(ctx):
    with fast_build() if ctx.inputs.get("fast") else contextlib.nullcontext():
        model = model_class(ctx.inputs)(ctx.yaml, verbose=False)
    ctx.state["model"] = model
    ctx.imgsz = probe_size(model)
    ctx.outputs["imgsz"] = ctx.imgsz
    params = sum(p.numel() for p in model.parameters())
    assert params > 0, "model has no parameters"
    ctx.outputs["params"] = params
    return f"{len(model.model)} layers, {params:,} parameters"


def calibrating_batchnorm(model):
    """BatchNorm layers set to take this batch's statistics as their running ones (cumulative average, reset).

    Freshly built layers keep mean 0 / variance 1, which in eval mode lets activations of deep
    multi-branch backbones (MobileOne) grow without bound until the outputs saturate; calibrated
    statistics behave like a trained model's, so the fuse and export comparisons mean something.
    """
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    return layers


@check("forward_train", "model", needs=("build",))
def forward_train(ctx):
    """Train-mode forward and backward; the backbone must receive gradients. The batch calibrates BatchNorm."""
    model = ctx.state["model"].train()
    momenta = {m: m.momentum for m in model.modules() if hasattr(m, "momentum")}
    calibrating_batchnorm(model)
    try:
        tensors = tensors_in(model(sample_input(ctx.imgsz, batch=2)))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
    assert_finite(tensors, "train forward")
    sum(t.float().mean() for t in tensors).backward()
    first = model.model[0]
    grads = [p.grad for p in first.parameters() if p.requires_grad]
    assert grads, f"layer 0 ({type(first).__name__}) has no trainable parameters"
    assert any(g is not None and g.abs().sum() > 0 for g in grads), (
        f"no gradient reaches layer 0 ({type(first).__name__})"
    )
    model.zero_grad(set_to_none=True)
    model.eval()
    return f"{len(tensors)} output tensors, gradients reach layer 0"


@check("forward_eval", "model", needs=("build",))
def forward_eval(ctx):
    """Eval-mode forward; keeps the predictions and the backbone and head maps for the checks after it."""
    import torch

    model = ctx.state["model"].eval()
    x = sample_input(ctx.imgsz)
    seen = {}
    hooks = [model.model[-1].register_forward_hook(lambda m, args, out: seen.update(head=args[0]))]
    if backbone_layer(model) is not None:
        hooks.append(model.model[0].register_forward_hook(lambda m, args, out: seen.update(backbone=out)))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    assert_finite(tensors_in(out), "eval forward")
    ctx.state.update(input=x, predictions=predictions(out), maps=seen)
    if ctx.inputs.get("keep_model"):  # the export matrix runs in tasks of its own, on this calibrated model
        path = ctx.workdir / "calibrated.pt"
        torch.save({"model": model, "input": x}, path)
        ctx.outputs["export_model"] = str(path)
    return f"output {tuple(predictions(out).shape)}"


def head_strides(head, model, levels):
    """The strides the head was built for: its own (Detect), else doubling up to the model stride (RT-DETR)."""
    own = [int(v) for v in getattr(head, "stride", [])]
    if own and any(own):
        return own
    top = int(model.stride.max())
    return [top >> (levels - 1 - i) for i in range(levels)]


@check("strides", "model", needs=("forward_eval",))
def strides(ctx):
    """Feature maps have the spatial size their strides promise; backbone channels match its declaration."""
    model, maps, s = ctx.state["model"], ctx.state["maps"], ctx.imgsz
    notes = []
    if "backbone" in maps:
        outputs = [t for t in maps["backbone"] if t is not None]
        sizes = [s // m.shape[-1] for m in outputs]
        assert sizes[-3:] == [8, 16, 32], f"backbone map strides {sizes}, expected ... 8, 16, 32"
        backbone = model.model[0]
        declared = list(getattr(backbone, "channels", None) or getattr(backbone, "width_list", []))
        actual = [m.shape[1] for m in outputs]
        assert not declared or declared == actual, f"backbone declares channels {declared} but returns {actual}"
        notes.append(f"backbone strides {sizes} channels {actual}")
    measured = [s // f.shape[-1] for f in maps["head"]]
    expected = head_strides(model.model[-1], model, len(measured))
    assert measured == expected, f"head expects strides {expected} but its inputs are at strides {measured}"
    notes.append(f"head strides {measured}")
    return "; ".join(notes)


def full_size_gflops(model, imgsz):
    """GFLOPs from one thop profile of a real full-size image (no stride extrapolation).

    Profiles the model itself, as ultralytics' get_flops does: thop removes its hooks and counters after.
    """
    import thop
    import torch

    im = torch.zeros(1, 3, imgsz, imgsz)
    macs = thop.profile(model.eval(), inputs=[im], verbose=False)[0]
    return macs * 2 / 1e9


@contextlib.contextmanager
def input_sizes(model):
    """The spatial sizes of every input ``model`` is called with inside the block (a forward pre-hook)."""
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[-2:])) if args else None)
    try:
        yield sizes
    finally:
        hook.remove()


@check("gflops", "covering", needs=("build",))
def gflops(ctx):
    from ultralytics.utils.torch_utils import get_flops

    model = ctx.state["model"].eval()
    with input_sizes(model) as sizes:
        reported = get_flops(model, FULL_IMGSZ)
    assert reported > 0, f"ultralytics reports 0 GFLOPs at {FULL_IMGSZ}"
    ctx.outputs["gflops"] = reported
    # thop's stride-aware profile either extrapolates from small proxies or, when they do not pay off (a model
    # that holds a backbone: bbpatch's flops_full_size edit), profiles the real image; then the figure it
    # returns is that full-size profile's, and gflops_full has nothing left to compute.
    ctx.state["gflops_profiled_full_size"] = (FULL_IMGSZ, FULL_IMGSZ) in sizes
    return f"{reported:.2f} GFLOPs at {FULL_IMGSZ}"


@check("gflops_full", "covering", needs=("gflops",))
def gflops_full(ctx):
    """ultralytics' GFLOPs (extrapolated from a small probe) equal a profile of a real full-size image."""
    reported = ctx.outputs["gflops"]
    if ctx.state.get("gflops_profiled_full_size"):
        return f"get_flops profiled the real {FULL_IMGSZ}x{FULL_IMGSZ} image itself (no extrapolation): {reported:.2f}"
    full = full_size_gflops(ctx.state["model"], FULL_IMGSZ)
    error = abs(reported - full) / full
    assert error <= GFLOPS_TOLERANCE, f"reported {reported:.2f} GFLOPs, full-size profile {full:.2f} ({error:.1%} off)"
    return f"reported {reported:.2f} GFLOPs = full-size profile {full:.2f} ({error:.2%} off)"


def onnx_runtime_available():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model, imgsz, workdir, stem, task="detect"):
    """Export through ultralytics' own exporter, as ``yolo export format=onnx`` does."""
    from ultralytics.engine.exporter import Exporter

    model.pt_path = str(workdir / f"{stem}.pt")  # the exporter writes next to it, never into the tree
    model.task = getattr(model, "task", None) or task  # set by the YOLO/RTDETR wrapper in normal use
    args = dict(format="onnx", imgsz=imgsz, simplify=False, device="cpu", batch=1, verbose=False)
    exporter = Exporter(overrides=args)
    return exporter(model=model), exporter.model


@check("onnx", "sample", needs=("forward_eval",))
def onnx_export(ctx):
    if not onnx_runtime_available():
        raise Skipped(ONNX_MISSING)
    import onnxruntime

    x = ctx.state["input"]
    try:
        path, exported = export_onnx(
            ctx.state["model"], ctx.imgsz, ctx.workdir, ctx.stem, ctx.inputs.get("task", "detect")
        )
    except ModuleNotFoundError as e:  # e.g. torch's new exporter wants onnxscript under an older ultralytics
        raise Skipped(f"the ONNX export here needs the {e.name!r} package: pip install {e.name}") from e
    expected = eval_predictions(exported, x)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    import torch

    got = torch.from_numpy(got)
    assert got.shape == expected.shape, f"onnxruntime output {tuple(got.shape)}, PyTorch {tuple(expected.shape)}"
    error = output_error(ctx, expected, got)
    assert error <= ONNX_TOLERANCE, f"onnxruntime differs from PyTorch by {error:.2e} (tolerance {ONNX_TOLERANCE})"
    return f"onnxruntime matches PyTorch (relative error {error:.1e})"


def reparameterizable_blocks(model):
    """Blocks inside bbpatch modules that fold their branches in ``reparameterize()``, with their parameter counts.

    The bbpatch modules themselves are left out: their ``reparameterize()`` only delegates to these.
    """
    blocks = {}
    owners = bbpatch_modules(model)
    for owner in owners:
        for m in owner.modules():
            if hasattr(m, "reparameterize") and m not in owners:
                blocks[m] = sum(p.numel() for p in m.parameters())
    return blocks


@check("fuse", "covering", needs=("forward_eval",))
def fuse(ctx):
    model = ctx.state["model"]
    blocks = reparameterizable_blocks(model)
    error, tolerance = fused_output_error(ctx, model)
    assert error <= tolerance, f"fused outputs differ by {error:.2e} (tolerance {tolerance})"
    unfolded = [type(m).__name__ for m, n in blocks.items() if sum(p.numel() for p in m.parameters()) >= n]
    assert not unfolded, f"fuse() left {len(unfolded)} reparameterizable blocks unfolded ({unfolded[0]} ...)"
    folded = f", {len(blocks)} blocks reparameterized" if blocks else ""
    return f"outputs equal (relative error {error:.1e}){folded}"


def fused_output_error(ctx, model):
    """Fuse ``model`` and compare its outputs before and after, in float64 where the release allows it."""
    if not fuses_in_float64():
        model.fuse(verbose=False)
        after = eval_predictions(model, ctx.state["input"])
        return output_error(ctx, ctx.state["predictions"], after), FUSE_TOLERANCE_FLOAT32
    x = ctx.state["input"].double()
    before = eval_predictions(model.double(), x)
    model.fuse(verbose=False)
    try:
        return output_error(ctx, before, eval_predictions(model, x)), FUSE_TOLERANCE
    finally:
        model.float()


@functools.cache
def fuses_in_float64():
    """Whether this release's Conv+BatchNorm folding keeps float64 (older ones build new float32 layers)."""
    import torch
    from ultralytics.utils.torch_utils import fuse_conv_and_bn

    conv, bn = torch.nn.Conv2d(2, 2, 1).double(), torch.nn.BatchNorm2d(2).double().eval()
    try:
        fuse_conv_and_bn(conv, bn)(torch.zeros(1, 2, 1, 1, dtype=torch.float64))
    except RuntimeError:
        return False
    return True


# ---------------------------------------------------------------- per family


def changed_parameters(before, model):
    names = [n for n, p in model.named_parameters() if n in before and not before[n].equal(p.detach())]
    return len(names) / max(len(before), 1)


@check("train", "family", needs=("build",))
def train(ctx):
    """One epoch on the synthetic dataset: the loss is finite and the optimizer moved the weights."""
    if ctx.inputs.get("task", "detect") != "detect":
        raise Skipped(f"the synthetic dataset is for detection, this is a {ctx.inputs['task']} model")
    wrapper = wrapper_class(ctx.inputs.get("kind"))(ctx.yaml)
    start = {}
    wrapper.add_callback(
        "on_train_start", lambda t: start.update({n: p.detach().clone() for n, p in t.model.named_parameters()})
    )
    wrapper.train(
        data=str(ctx.data), epochs=1, imgsz=ctx.imgsz, batch=4, workers=0, device="cpu", plots=False, val=False,
        amp=False, pretrained=False, project=str(ctx.workdir / "runs"), name=ctx.stem, exist_ok=True,
        verbose=False, seed=0,
    )  # fmt: skip
    trainer = wrapper.trainer
    losses = {k: float(v) for k, v in trainer.label_loss_items(trainer.tloss).items()}
    ctx.outputs.update(losses=losses, checkpoint=str(trainer.last))
    assert losses and all(math.isfinite(v) for v in losses.values()), f"loss not finite: {losses}"
    moved = changed_parameters(start, trainer.model)
    assert moved > 0, "training did not change any weight"
    assert Path(trainer.last).is_file(), f"no checkpoint written at {trainer.last}"
    shown = ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in losses.items())
    return f"1 epoch: {shown}; {moved:.0%} of tensors updated", {"losses": losses, "checkpoint": str(trainer.last)}


# ---------------------------------------------------------------- per family: pretrained weights reach the backbone


def bbpatch_package():
    """The package the patched tasks.py takes bbpatch's classes from: ``ultralytics.nn.Addmodules``, or in a tree
    adopted from the blog recipe ``ultralytics.nn.Addmodules.bbpatch`` (the user's package keeps the name)."""
    import importlib

    from ultralytics.nn import tasks

    return importlib.import_module(tasks.bbpatch_role.__module__.rpartition(".")[0])


def backbone_class_built(config):
    """The bbpatch class layer 0 of a model dict builds at its default scale (``backbone_scales`` followed)."""
    addmodules = bbpatch_package()
    name = str(config["backbone"][0][2])
    variants = config.get("backbone_scales") or {}
    scale = next(iter(config.get("scales") or {}), None)
    if isinstance(variants, dict) and name in variants.values():
        name = variants.get(scale, name)
    return getattr(addmodules, name, None)


def trained_looking_checkpoint(timm_name, path):
    """A randomly initialized timm classifier whose BatchNorm statistics look like a trained network's (variances
    1e-3 .. 2e-2, where an eps of 1e-3 instead of 1e-5 shows), each scale following them so activations stay finite."""
    import timm
    import torch

    model = timm.create_model(timm_name, pretrained=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) * 2e-2 + 1e-3)
            bn.weight.copy_(bn.running_var.sqrt() * (1 + 0.1 * torch.randn(bn.weight.shape, generator=g)))
    torch.save(model.state_dict(), path)


def with_checkpoint(config, cls, path):
    """The model dict with layer 0 building ``cls`` from the checkpoint file ``path``."""
    first = config["backbone"][0]
    args = list(first[3] if len(first) > 3 else [])
    slot = 1 if cls.__name__ == "TimmBackbone" else 0
    args[slot : slot + 1] = [str(path)]
    config = {k: v for k, v in config.items() if k != "backbone_scales"}
    config["backbone"] = [[-1, 1, cls.__name__, args], *config["backbone"][1:]]
    return config


def same_maps(layer, reference, x):
    import torch

    with torch.no_grad():
        ours, theirs = layer.eval()(x), [reference(x)[i] for i in layer.out_indices]
    assert_finite(theirs, "timm's model")
    return len(ours) == len(theirs) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(ours, theirs))


def reloaded(model):
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@check("pretrained", "pretrained")
def pretrained(ctx):
    """A checkpoint reaches the backbone unaltered: layer 0 of the model built from a local file computes exactly
    what timm's own ``features_only`` model computes from it, built, reloaded (the pickling path a deepcopy and
    ultralytics' EMA take too) and fused."""
    import timm
    import torch
    import yaml
    from timm.utils import reparameterize_model

    config = yaml.safe_load(Path(ctx.yaml).read_text(encoding="utf-8"))
    cls = backbone_class_built(config)
    if not (isinstance(cls, type) and issubclass(cls, bbpatch_package().TimmBackbone)):
        raise Skipped(f"layer 0 ({config['backbone'][0][2]}) is not a timm backbone: no pretrained weights")
    first_args = config["backbone"][0][3] if len(config["backbone"][0]) > 3 else []
    timm_name = getattr(cls, "timm_name", None) or str(first_args[0])
    path = ctx.workdir / f"{ctx.stem}-{timm_name}.pth"
    trained_looking_checkpoint(timm_name, path)
    torch.manual_seed(0)
    model = model_class(ctx.inputs)(with_checkpoint(config, cls, path), verbose=False).eval()
    overlay = dict(file=str(path))
    reference = timm.create_model(timm_name, pretrained=True, features_only=True, pretrained_cfg_overlay=overlay)
    reference.eval()
    x = sample_input(64)
    stages = {"built": lambda: model.model[0], "reloaded": lambda: reloaded(model).model[0]}
    differ = [stage for stage, layer in stages.items() if not same_maps(layer(), reference, x)]
    model.fuse(verbose=False)
    if not same_maps(model.model[0], reparameterize_model(reference), x):
        differ.append("fused")
    assert not differ, f"{timm_name} from a local checkpoint differs from timm's own model: {', '.join(differ)}"
    return f"{timm_name}: equal to timm's own model bit for bit (built, reloaded, fused)"


# ---------------------------------------------------------------- fresh-process checkpoint loading


def load_and_predict(ctx):
    checkpoint = ctx.inputs.get("checkpoint")
    if not checkpoint:
        raise Skipped("no checkpoint: the train check did not produce one")
    wrapper = wrapper_class(ctx.inputs.get("kind"))(checkpoint)
    image = next((ctx.data.parent / "images" / "val").glob("*.jpg"))
    results = wrapper.predict(str(image), imgsz=ctx.imgsz, device="cpu", verbose=False, save=False)
    assert len(results) == 1, f"predict returned {len(results)} results for one image"
    boxes = results[0].boxes
    assert_finite([boxes.data], "predict")
    return f"loaded {type(wrapper.model).__name__}, predicted {len(boxes)} boxes"


@check("reload", "load", needs=("train",))
def reload(ctx):
    return load_and_predict(ctx)


@check("safe_load", "safe_load", needs=("train",))
def safe_load(ctx):
    """The same with ULTRALYTICS_SAFE_LOAD=1 (the orchestrator sets it for this process)."""
    from ultralytics.nn import tasks

    safe = getattr(tasks, "_SafeLoad", None)
    if safe is None:
        raise Skipped("this ultralytics release has no restricted loading")
    if not safe.SUPPORTED:
        raise Skipped("restricted loading needs torch >= 2.6")
    try:
        return load_and_predict(ctx)
    except TypeError as e:
        refused = foreign_globals(ctx.inputs["checkpoint"])
        if not refused:
            raise
        shown = ", ".join(refused[:4]) + (f" and {len(refused) - 4} more" if len(refused) > 4 else "")
        raise AssertionError(f"restricted loading refuses the checkpoint: it pickles {shown}") from e


TRUSTED_MODULES = ("torch.", "ultralytics.", "numpy", "builtins", "collections", "pathlib", "_codecs", "copyreg")


def foreign_globals(checkpoint):
    """Classes a checkpoint pickles from outside torch and ultralytics' own modules (timm, Addmodules ...)."""
    import torch

    names = torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint)
    return sorted(n for n in names if "Addmodules" in n or not n.startswith(TRUSTED_MODULES))


# ---------------------------------------------------------------- stock parity


@check("unpatched_reference", "reference")
def unpatched_reference(ctx):
    """Run in the unpatched copy: parameters, weights and outputs of the stock YAML."""
    import torch

    model = model_class(ctx.inputs)(ctx.yaml, verbose=False).eval()
    x = sample_input(ctx.imgsz)
    reference = {"state_dict": model.state_dict(), "input": x, "output": eval_predictions(model, x)}
    path = ctx.workdir / f"reference-{ctx.stem}.pt"
    torch.save(reference, path)
    ctx.outputs["reference"] = str(path)
    return f"{sum(p.numel() for p in model.parameters()):,} parameters in the unpatched tree"


@check("parity", "stock", needs=("unpatched_reference",))
def parity(ctx):
    """The stock YAML builds the same layers, parameters and outputs in the patched tree."""
    import torch

    if not ctx.inputs.get("reference"):
        raise AssertionError("no unpatched reference: the unpatched_reference check failed")
    reference = torch.load(ctx.inputs["reference"], weights_only=True)
    model = model_class(ctx.inputs)(ctx.yaml, verbose=False).eval()
    state = model.state_dict()
    want = {k: tuple(v.shape) for k, v in reference["state_dict"].items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    assert have == want, (
        f"state_dict differs from the unpatched tree: {sorted(set(have.items()) ^ set(want.items()))[:3]}"
    )
    model.load_state_dict(reference["state_dict"])
    error = output_error(ctx, reference["output"], eval_predictions(model, reference["input"]))
    assert error <= PARITY_TOLERANCE, f"outputs differ from the unpatched tree by {error:.2e}"
    return f"{sum(p.numel() for p in model.parameters()):,} parameters and outputs equal to the unpatched tree"


# ---------------------------------------------------------------- distributed


@check("ddp", "once", needs=("build",))
def ddp(ctx):
    """Two gloo ranks train a fresh copy under DistributedDataParallel, as multi-GPU training does."""
    from . import distributed

    model = model_class(ctx.inputs)(ctx.yaml, verbose=False)
    model.nc, model.names = model.yaml["nc"], {i: str(i) for i in range(model.yaml["nc"])}  # as the trainer sets them
    return distributed.smoke_test(model, ctx.imgsz, ctx.workdir)
