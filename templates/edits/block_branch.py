# Inserted before parse_model's final `else: c2 = ch[f]`.
if bbpatch_role(m) == "block":
    c1, c2 = ch[f], make_divisible(min(args[0], max_channels) * width, 8)
    args = [c1, c2, *args[1:]]
    if bbpatch_takes_repeats(m):
        args.insert(2, n)  # number of repeats
        n = 1
