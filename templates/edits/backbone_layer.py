# Wraps parse_model's `m_ = ...` statement: a backbone was already built in its branch.
if isinstance(c2, list):
    m_ = m
    m_.backbone = True
else:
    ORIGINAL
