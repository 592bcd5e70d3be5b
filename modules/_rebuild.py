"""Pickle a module as the recipe to rebuild it: constructor arguments, tensors and plain attributes.

A checkpoint of a timm-based layer then names only the bbpatch class, never timm's internal ones, so it
loads with torch's ``weights_only`` unpickler (ultralytics' ``ULTRALYTICS_SAFE_LOAD``) and survives changes
of timm's class layout. ``copy.deepcopy`` takes the same path.
"""

PLAIN_SCALARS = (bool, int, float, str, type(None))


def is_plain(value):
    """True for values the weights_only unpickler rebuilds without any global: scalars, lists, str-keyed dicts.

    Exact types: subclasses such as timm's ``Format`` (a str enum) would pickle as their class.
    """
    if type(value) in PLAIN_SCALARS:
        return True
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False


def plain_attributes(module):
    """Per submodule, the plain attributes a rebuild would not restore.

    These are what ultralytics changes after construction (BatchNorm eps and momentum, inplace
    activations), the training flags, and the layer attributes parse_model attaches (i, f, type, np,
    backbone). Tuples are structural (kernel sizes...) and come back with the rebuild.
    """
    return {name: {k: v for k, v in vars(m).items() if is_plain(v)} for name, m in module.named_modules()}


def is_reparameterized(module):
    """timm's reparameterizable blocks (MobileOne, RepVGG, FastViT) hold their fused conv in ``reparam_conv``."""
    return any(getattr(m, "reparam_conv", None) is not None for m in module.modules())


def follow_loaded_tensors(module, loaded):
    """Give tensors that a state dict does not hold (non-persistent buffers) the loaded tensors' dtype and device."""
    reference = next((t for t in loaded.values() if t.is_floating_point()), None)
    if reference is None:
        return
    for m in module.modules():
        for name in m._non_persistent_buffers_set:
            buffer = m._buffers.get(name)
            if buffer is not None:
                dtype = reference.dtype if buffer.is_floating_point() else buffer.dtype
                m._buffers[name] = buffer.to(device=reference.device, dtype=dtype)


def non_persistent_buffers(module):
    """The buffers a state dict leaves out, by qualified name."""
    return {
        f"{owner}.{name}" if owner else name: buffer
        for owner, m in module.named_modules()
        for name, buffer in m._buffers.items()
        if buffer is not None and name in m._non_persistent_buffers_set
    }


class RebuildOnLoad:
    """Mixin for ``nn.Module`` subclasses whose ``__init__`` stores its keyword arguments in ``self.config``."""

    config: dict

    def _construct(self, **config):
        type(self).__init__(self, **config)

    def reparameterize(self):
        """Fold every multi-branch block inside into its single-branch inference form (idempotent)."""
        for m in self.modules():
            if m is not self and hasattr(m, "reparameterize"):
                m.reparameterize()

    def __getstate__(self):
        return {
            "config": self.config,
            "reparameterized": is_reparameterized(self),
            "tensors": self.state_dict(),
            "buffers": non_persistent_buffers(self),  # RoPE periods...: as they are now (half, say), not rebuilt
            "attributes": plain_attributes(self),
            # parameters without gradients: EMA copies, frozen layers
            "no_grad": [name for name, p in self.named_parameters() if not p.requires_grad],
        }

    def __setstate__(self, state):
        self._construct(**state["config"])
        if state["reparameterized"]:
            self.reparameterize()
        # assign=True keeps the saved dtype and device (ultralytics saves half precision)
        self.load_state_dict(state["tensors"], assign=True)
        follow_loaded_tensors(self, state["tensors"])
        for name, tensor in state.get("buffers", {}).items():  # checkpoints before 0.5 have none: rebuilt as above
            owner, _, buffer = name.rpartition(".")
            self.get_submodule(owner)._buffers[buffer] = tensor
        for name, attributes in state["attributes"].items():
            vars(self.get_submodule(name)).update(attributes)
        for name in state["no_grad"]:
            self.get_parameter(name).requires_grad_(False)
