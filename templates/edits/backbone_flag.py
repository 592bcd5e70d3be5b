# Inserted before parse_model's layer loop.
backbone = False  # bbpatch: set once layer 0 is a multi-output backbone
