# Wraps parse_model's `m_ = ...` statement: a backbone was already built in its branch. A class with a list c2
# (YOLOv9's CBLinear, a recipe tree's GOLD-YOLO Split) is no backbone: it is built here as in stock.
if isinstance(c2, list) and isinstance(m, torch.nn.Module):
    m_ = m
    m_.backbone = True
else:
    ORIGINAL
