# Wraps parse_model's `for j, a in enumerate(args):` string evaluation: a bbpatch backbone reads its YAML strings
# itself (checkpoint paths such as ./w.pth or ~/w.pth, on which ast.literal_eval raises a SyntaxError).
if not bbpatch_takes_raw_args(m):
    ORIGINAL
