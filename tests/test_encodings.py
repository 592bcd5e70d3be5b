"""Python's encoding rules on real trees: PEP 263 coding lines and the UTF-8 BOM are honoured on read and write,
revert is byte-exact in every encoding Python reads source in, and bytes Python would reject are one clear
error with nothing changed."""

from __future__ import annotations

import codecs
import importlib.util

import pytest

from bbpatch import api
from bbpatch.engine.tree import find_tree

from helpers import run_cli, tree_bytes

TASKS = "ultralytics/nn/tasks.py"

# encoding -> a comment only that encoding (among these) writes this way
ENCODINGS = {
    "utf-8": "café, 日本語, ✓",
    "utf-8-sig": "café with a BOM",
    "latin-1": "café crème",
    "cp1252": "café – “quoted” €",
    "iso-8859-15": "€uro œuvre",
    "cp437": "café ░▒▓",
    "koi8-r": "привет мир",
    "shift_jis": "日本語のコメント",
    "euc-jp": "日本語のコメント",
    "gbk": "中文注释",
    "big5": "中文註解",
}


def _recode(tasks, encoding: str, comment: str) -> bytes:
    """tasks.py re-encoded: a coding line (or the BOM), a comment in that encoding, emoji in strings escaped."""
    text = tasks.read_text("utf-8")
    if encoding == "utf-8-sig":
        header = ""
    elif encoding == "utf-8":
        header = "# -*- coding: utf-8 -*-\n"
    else:
        header = f"# -*- coding: {encoding} -*-\n"
    body = f"{header}# {comment}\n{text}\n# {comment} (end)\n"
    data = body.encode(encoding, errors="backslashreplace")
    assert data.decode(encoding).count(comment) == 2
    return data


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_apply_status_revert_keep_the_files_encoding(fresh_tree, encoding):
    tasks = fresh_tree / TASKS
    comment = ENCODINGS[encoding]
    tasks.write_bytes(_recode(tasks, encoding, comment))
    compile(tasks.read_bytes(), str(tasks), "exec")  # Python itself accepts the file
    before = tree_bytes(fresh_tree)

    assert api.apply(fresh_tree).state == "patched"
    patched = tasks.read_bytes()
    assert patched.startswith(codecs.BOM_UTF8) == (encoding == "utf-8-sig")
    text = patched.decode(encoding)
    assert text.count(comment) == 2 and "from ultralytics.nn.Addmodules import *" in text
    compile(patched, str(tasks), "exec")
    assert api.status(fresh_tree).state == "patched"

    assert api.revert(fresh_tree).state == "reverted"
    assert tree_bytes(fresh_tree) == before


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8-sig", "shift_jis"])
def test_structural_revert_keeps_the_encoding_and_the_users_line(fresh_tree, encoding):
    """The user edits the patched file: revert removes bbpatch's edits by structure (not from the manifest's
    copy) and must write the result back in the file's own encoding."""
    tasks = fresh_tree / TASKS
    comment = ENCODINGS[encoding]
    original = _recode(tasks, encoding, comment)
    tasks.write_bytes(original)
    api.apply(fresh_tree)
    mine = f"\n# {comment}: my own line\n".encode(encoding.replace("utf-8-sig", "utf-8"))  # no second BOM
    tasks.write_bytes(tasks.read_bytes() + mine)
    report = api.revert(fresh_tree)
    assert any("kept yours" in note for note in report.notes)
    assert tasks.read_bytes() == original + mine


def test_patch_and_unpatch_source_return_bytes_in_the_sources_encoding(fresh_tree):
    """The signatures the git merge driver relies on: bytes in, bytes out, in the file's encoding."""
    tree = find_tree(fresh_tree)
    data = _recode(fresh_tree / TASKS, "latin-1", "café")
    patched, statuses = api.patch_source(tree, "nn/tasks.py", data)
    assert statuses["import_addmodules"] == "applied"
    assert b"# caf\xe9\n" in patched and "café".encode() not in patched
    assert api.unpatch_source(tree, "nn/tasks.py", patched) == data


def _refused(result, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    assert "nn/tasks.py" in error and "Python would refuse to import it" in error, error
    for word in words:
        assert word in error, error


BAD_SOURCES = {
    "latin-1 byte in a utf-8 comment, line 1": (lambda text: b"# caf\xe9\n" + text, ("line 1", "byte 0xe9")),
    "latin-1 byte deep in the file": (
        lambda text: text + b"\n# na\xefve\n",
        ("byte 0xef is not valid utf-8", "invalid continuation byte"),
    ),
    "unknown coding line": (lambda text: b"# -*- coding: no-such-codec -*-\n" + text, ("no-such-codec",)),
    "utf-16 coding line": (lambda text: b"# -*- coding: utf-16 -*-\n" + text, ("utf-16",)),
    "BOM with a latin-1 coding line": (
        lambda text: codecs.BOM_UTF8 + b"# -*- coding: latin-1 -*-\n" + text,
        ("encoding problem",),
    ),
}


@pytest.mark.parametrize("variant", sorted(BAD_SOURCES))
def test_bytes_python_would_reject_are_one_clear_line_and_change_nothing(fresh_tree, variant):
    tasks = fresh_tree / TASKS
    corrupt, words = BAD_SOURCES[variant]
    tasks.write_bytes(corrupt(tasks.read_bytes()))
    with pytest.raises((SyntaxError, UnicodeDecodeError)):  # what import does with the file: Python rejects it too
        compile(importlib.util.decode_source(tasks.read_bytes()), str(tasks), "exec")
    before = tree_bytes(fresh_tree)
    for command in ("status", "apply"):
        _refused(run_cli(command, str(fresh_tree)), *words)
    assert tree_bytes(fresh_tree) == before
