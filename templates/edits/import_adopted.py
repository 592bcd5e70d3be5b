# Inserted after `from ultralytics.nn.modules import (...)` in a tree adopted from the blog recipe (bbpatch adopt).
from ultralytics.nn.Addmodules.bbpatch import *  # noqa: F403  (bbpatch: backbones and blocks beside your modules)
