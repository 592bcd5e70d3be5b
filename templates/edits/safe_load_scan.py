# Inserted after `_scan(ul_tasks)` in _SafeLoad._build (8.4.100 form).
_scan(importlib.import_module("ultralytics.nn.Addmodules"))  # bbpatch: backbones and blocks
