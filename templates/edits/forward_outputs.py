# Wraps `y.append(x if m.i in self.save else None)` in every forward loop.
if getattr(m, "backbone", False):
    x = bbpatch_save_backbone_outputs(x, y, self.save)
else:
    ORIGINAL
