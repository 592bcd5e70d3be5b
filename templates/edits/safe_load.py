# Added to _SafeLoad's allowed parent packages.
"ultralytics.nn.Addmodules"
