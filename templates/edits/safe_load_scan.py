# Inserted after `_scan(ul_tasks)` in _SafeLoad._build (8.4.100 form); the second name is bbpatch's package in an
# adopted tree (a plain tree's Addmodules answers to it too), so checkpoints naming either load.
for _bbpatch_package in ("ultralytics.nn.Addmodules", "ultralytics.nn.Addmodules.bbpatch"):
    _scan(importlib.import_module(_bbpatch_package))  # bbpatch: backbones and blocks
