"""``bbpatch yaml``'s promise: a derived YAML is built in its tree before it is written.

:func:`build.derive_built` derives (``bbpatch.models.yamlgen``), builds the text in the target tree's own
ultralytics in a subprocess (``probe``; bbpatch's import hook patches a tree in memory that is not patched on
disk), adds channel adapters when the head builds only with the stock backbone's channels, and refuses what
still does not build. This process imports neither torch nor ultralytics.
"""
