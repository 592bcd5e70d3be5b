"""Fit any timm ``features_only`` model to what a YOLO / RT-DETR head reads: maps at strides 8, 16, 32 (and 4,
2 where asked) whose sizes are ``ceil(input / stride)``, at any input size a multiple of 32.

What each kind of model gets (docs/backbones.md, "Any timm model"):

- **fixed input size** (timm's pretrained config says ``fixed_input_size``: Swin, ViT, CoaT, EfficientFormer...):
  built for the training size (``img_size``) with timm's own dynamic-size options where the model has them
  (``dynamic_img_size``, ``strict_img_size=False``, ``dynamic_img_pad``); a model without any computes at its
  built size only, so a smaller input is zero-padded to it and the maps cropped back, and a larger one (a
  rectangular validation batch past the training size) is scaled down to fit, its maps resized back;
- **a patch size that is not a power of two** (DINOv2, EVA02: patch 14): the input is resized by 14/16 first,
  so that the patch grid is ``input / 16`` and the maps stand at stride 16;
- **missing levels** (plain ViTs: every map at stride 16; LeViT: 16, 32, 64): a simple feature pyramid
  (ViTDet) from the stride-16 map: P3 by a learned 2x2 stride-2 transposed convolution, P5 by 2x2 max pooling;
- **channels-last maps** (``output_fmt`` NHWC: MambaOut, Swin) are permuted to NCHW;
- **maps a few pixels off their stride** (Inception's unpadded convolutions) are resized to the exact size;
  an input below the smallest one such a model takes (Inception: 75 px) is zero-padded to it first.
"""

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

TRAIN_SIZE = 640  # ultralytics' default imgsz: what a fixed-size model is built for unless told
NOMINAL_STRIDE = 16  # a plain ViT's maps stand here (patch 14 is resized to it)
DYNAMIC_OPTIONS = dict(dynamic_img_size=True, strict_img_size=False, dynamic_img_pad=True)
PAD_MULTIPLE = {"halo": 256}  # name part -> input multiple: HaloNet's 8x8 attention blocks at stride 32
# name part -> smallest input side: Inception's unpadded stem (torchvision's 75); CSATv2's unpadded stride-64 stage
PAD_MINIMUM = {"inception": 75, "csatv2": 64}


# Models that compute at one input size whatever img_size says (timm accepts img_size and ignores it).
ONLY_SIZE = {r"^efficientformer_l\d": (224, "its attention biases are fixed at 7x7 at stride 32")}


def check_only_size(model_name, img_size):
    for pattern, (size, why) in ONLY_SIZE.items():
        if re.match(pattern, model_name) and img_size != size:
            raise ValueError(
                f"timm's {model_name} computes at {size}x{size} only ({why}): build it with img_size={size} "
                f"(TimmBackbone's 5th arg; other inputs are padded or scaled to {size}), or pick another model"
            )


def is_power_of_two(n):
    return n > 0 and not n & (n - 1)


def fixed_input_size(model_name):
    """timm's own word on whether ``model_name`` was built for one input size (no model is built)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    return bool(getattr(cfg, "fixed_input_size", False))


def create_accepting(create, model_name, options):
    """``create(**accepted)``, dropping each option the model's constructor refuses: ``(model, accepted)``."""
    options = dict(options)
    while True:
        try:
            return create(**options), options
        except TypeError as error:
            refused = re.search(r"unexpected keyword argument '(\w+)'", str(error))
            if not refused or refused.group(1) not in options:
                raise
            options.pop(refused.group(1))


def size_options(create, model_name, img_size):
    """Keyword arguments building ``model_name`` for ``img_size`` and, where timm can, any size:
    ``(options, takes_any_size)``. A structure-only build on the meta device finds what the model accepts."""
    check_only_size(model_name, img_size)
    if not fixed_input_size(model_name):
        return {}, True
    with torch.device("meta"):
        model, accepted = create_accepting(create, model_name, dict(img_size=img_size, **DYNAMIC_OPTIONS))
    reduction = model.feature_info.reduction()[-1]
    if not is_power_of_two(reduction):  # patch 14: built for the resized input, grid = img_size / 16
        accepted["img_size"] = math.ceil(img_size / NOMINAL_STRIDE) * reduction
    return accepted, bool(set(accepted) & set(DYNAMIC_OPTIONS))


def pad_multiple(model_name):
    return next((m for part, m in PAD_MULTIPLE.items() if part in model_name), 1)


def pad_minimum(model_name):
    return next((m for part, m in PAD_MINIMUM.items() if part in model_name), 1)


class SimplePyramid(nn.Module):
    """ViTDet's simple feature pyramid for the levels a model lacks: from its stride-16 map, P3 by a 2x2
    stride-2 transposed convolution (half the channels), P5 by 2x2 max pooling; maps it has pass as they are."""

    def __init__(self, strides, channels, levels):
        super().__init__()
        self.sources, self.channels, steps = [], [], {}
        for level in levels:
            stride = 2**level
            if stride in strides:
                self.sources.append(strides.index(stride))
                self.channels.append(channels[strides.index(stride)])
            elif stride * 2 in strides:
                source = strides.index(stride * 2)
                steps[str(level)] = nn.ConvTranspose2d(channels[source], channels[source] // 2, 2, 2)
                self.sources.append(source)
                self.channels.append(channels[source] // 2)
            elif stride // 2 in strides:
                source = strides.index(stride // 2)
                steps[str(level)] = nn.MaxPool2d(2, 2, ceil_mode=True)
                self.sources.append(source)
                self.channels.append(channels[source])
            else:
                raise ValueError(f"no map at stride {stride}, {stride * 2} or {stride // 2}: maps at strides {strides}")
        self.levels = list(levels)
        self.steps = nn.ModuleDict(steps)

    def forward(self, maps):
        out = []
        for level, source in zip(self.levels, self.sources):
            step = self.steps[str(level)] if str(level) in self.steps else None
            out.append(maps[source] if step is None else step(maps[source]))
        return out


def channels_first(maps, output_fmt):
    return [m.permute(0, 3, 1, 2) for m in maps] if output_fmt == "NHWC" else list(maps)


def fitted_input(x, built_size, takes_any_size, resize, multiple, minimum=1):
    """``(input the timm model computes on, content)``: resized for patch 14, zero-padded where the model needs it;
    ``content`` is ``(h, w, padded h, padded w)`` of the image inside it when padded, else None.

    A model that computes at its built size only gets a larger input (rectangular validation pads past the
    training size) scaled down to fit; its maps are resized back to the input's strides (:func:`aligned`).
    """
    h, w = (int(side) for side in x.shape[-2:])  # ints, also while tracing an export: ONNX divides differently
    if resize is not None:
        grid_h, grid_w = math.ceil(h / NOMINAL_STRIDE), math.ceil(w / NOMINAL_STRIDE)
        x = F.interpolate(x, size=(grid_h * resize, grid_w * resize), mode="bilinear", align_corners=False)
        h, w = (int(side) for side in x.shape[-2:])
    if takes_any_size:
        target_h, target_w = (max(minimum, -(-side // multiple) * multiple) for side in (h, w))
    else:
        if h > built_size or w > built_size:
            scale = built_size / max(h, w)
            h, w = max(1, int(h * scale)), max(1, int(w * scale))
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        target_h = target_w = built_size
    if (target_h, target_w) == (h, w):
        return x, None
    return F.pad(x, (0, target_w - w, 0, target_h - h)), (h, w, target_h, target_w)


def aligned(maps, strides, size, content=None):
    """Each map at exactly ``ceil(size / stride)``: the padding's part cropped off, the rest resized where it is
    not already that size (Inception's unpadded convolutions, an input scaled down to fit)."""
    out = []
    for m, stride in zip(maps, strides):
        if content is not None:
            h, w, padded_h, padded_w = content
            m = m[..., : -(-int(m.shape[-2]) * h // padded_h), : -(-int(m.shape[-1]) * w // padded_w)]
        target = (math.ceil(int(size[0]) / stride), math.ceil(int(size[1]) / stride))
        if (int(m.shape[-2]), int(m.shape[-1])) != target:
            m = F.interpolate(m, size=target, mode="bilinear", align_corners=False)
        out.append(m)
    return out
