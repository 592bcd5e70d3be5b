"""Adoption: ``bbpatch adopt`` takes over a tree patched by hand with the blog recipe (docs/adopt.md).

``adoption`` plans the change (the recipe's edits out, bbpatch's in, the user's modules and YAMLs kept, a
registry of the recipe's backbone names) and commits it through ``bbpatch.disk``; the recognising of the
recipe itself is the engine's (``bbpatch.engine.recipe``). ``bbpatch apply`` on an adopted tree calls
``plan_update`` here.
"""
