"""The patch's life: ``apply``, ``revert`` and ``status`` of a tree, one module each.

Each plans from the engine's edits and the disk's records, and writes only through
``bbpatch.disk.transaction``. ``bbpatch.api`` is their public face.
"""
