# Inserted after `from ultralytics.nn.modules import (...)` in nn/tasks.py.
from ultralytics.nn.Addmodules import *  # noqa: F403  (bbpatch: backbones and blocks for model YAMLs)
