"""The disk: what is in a tree and what bbpatch recorded of it, and the one way to write into it.

``paths`` says which paths are safe (inside the package, no symlink out); ``records`` reads sources, the
manifest and the files bbpatch ships; ``manifest`` is the record's format; ``transaction`` (with ``journal``,
the write-ahead journal, and ``import_order``) is where every write goes: locked, journalled, atomic, in an
order that keeps ultralytics importable at every instant. Nothing above this room opens a tree's file for writing.
"""
