# Inserted before parse_model's final `else: c2 = ch[f]`.
if bbpatch_role(m) == "backbone":
    m = m(*args)
    c2 = bbpatch_channels(m)
    backbone = True
