# Inserted before parse_model's final `else: c2 = ch[f]`.
if bbpatch_role(m) == "backbone":
    t, m = bbpatch_backbone(t, m, args, d)
    c2 = bbpatch_channels(m)
    backbone = True
