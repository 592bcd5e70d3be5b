"""Every edit bbpatch makes, in the order it applies them. One module per edit; this list is the registry."""

from bbpatch.engine.edits import (
    backbone_args,
    backbone_branch,
    backbone_flag,
    backbone_layer,
    block_branch,
    channel_list,
    flops_full_size,
    forward_outputs,
    fuse_hook,
    import_addmodules,
    layer_index,
    layer_type,
    safe_load,
    stride_probe,
    yaml_name,
)
from bbpatch.engine.edits.base import TASKS, TORCH_UTILS, AnchorMissing, Edit

EDITS: tuple[Edit, ...] = tuple(
    module.EDIT
    for module in (
        import_addmodules,
        backbone_flag,
        yaml_name,
        backbone_args,
        backbone_branch,
        block_branch,
        backbone_layer,
        layer_type,
        layer_index,
        channel_list,
        forward_outputs,
        stride_probe,
        flops_full_size,
        fuse_hook,
        safe_load,
    )
)

FILES = (TASKS, TORCH_UTILS)

__all__ = ["EDITS", "FILES", "AnchorMissing", "Edit"]
