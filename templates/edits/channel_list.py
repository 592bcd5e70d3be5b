# Wraps parse_model's `ch.append(c2)`: a backbone adds its channel list, padded to 5 slots.
if isinstance(c2, list):
    ch.extend(c2)
    ch[:0] = [0] * (5 - len(ch))
else:
    ORIGINAL
