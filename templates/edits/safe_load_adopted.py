# Added to _SafeLoad's allowed parent packages after "ultralytics.nn.Addmodules": bbpatch's package in an adopted tree.
"ultralytics.nn.Addmodules.bbpatch"
