# Inserted before parse_model's final `else: c2 = ch[f]`.
if bbpatch_role(m) == "backbone":
    m = bbpatch_backbone(m, args, d)
    c2 = bbpatch_channels(m)
    backbone = True
