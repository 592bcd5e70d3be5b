# First statement of parse_model's layer loop: keep the YAML name for a backbone layer's type.
t = m
