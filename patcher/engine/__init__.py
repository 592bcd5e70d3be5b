"""The engine: bbpatch's edits on ultralytics' sources, as pure functions of bytes.

``tree`` finds an ultralytics package and its layout without importing it; ``cst`` and ``matchers`` are the
libcst helpers; ``encoding`` decodes a source as Python would; ``edits`` is the registry, one module per edit;
``sources`` runs the registry over one file (patch, unpatch, status); ``hand_patched`` and ``recipe`` recognise
the blog recipe's hand edits. Nothing here writes a file, imports torch / timm / ultralytics, or knows the CLI.
"""
