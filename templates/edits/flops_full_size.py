# Inserted after get_flops' `stride = max(int(model.stride.max()), 32) ...`: backbone models profile at full size.
if any(getattr(m, "backbone", False) for m in model.modules()):
    stride = max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz
