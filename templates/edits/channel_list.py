# Wraps parse_model's `ch.append(c2)`: a backbone adds its channel list, padded to 5 slots. The next layer sees
# the deepest map's channels as its stale c2, as after any stock layer (a Detect or AIFI right after the backbone).
# A list c2 of a layer that is no backbone (CBLinear's) is appended whole, as in stock.
if isinstance(c2, list) and isinstance(m, torch.nn.Module):
    ch.extend(c2)
    ch[:0] = [0] * (5 - len(ch))
    c2 = c2[-1]
else:
    ORIGINAL
