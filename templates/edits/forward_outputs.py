# Wraps `y.append(x if m.i in self.save else None)` in every forward loop.
# vars(), not getattr(): on an nn.Module a missing attribute raises inside Module.__getattr__, on every layer
# of every forward; and a submodule named `backbone` lives in _modules, so it is not mistaken for the flag.
if vars(m).get("backbone", False):
    x = bbpatch_save_backbone_outputs(x, y, self.save)
else:
    ORIGINAL
