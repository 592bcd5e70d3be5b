# Wraps parse_model's `t = str(m)...` statement: a backbone keeps its YAML name.
if not (isinstance(c2, list) and isinstance(m, torch.nn.Module)):
    ORIGINAL
