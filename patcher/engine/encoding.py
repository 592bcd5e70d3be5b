"""Python's own rules for the encoding of a source file (PEP 263 coding line, UTF-8 BOM, else UTF-8).

bbpatch reads and writes a file in the encoding Python reads it in (libcst keeps it: ``Module.bytes``), and
refuses, with one line naming the file, the line and the byte, what Python itself would refuse to import.
"""

from __future__ import annotations

import io
import tokenize

from bbpatch.engine.tree import TreeError

ASCII_PROBE = "x = 1  # ok\n"


class EncodingProblem(TreeError):
    """Bytes Python would not read as source: nothing was changed."""


def source_encoding(name: object, data: bytes) -> str:
    """The encoding Python reads ``data`` in; EncodingProblem if Python would reject the file."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        _raise_for_bad_byte(name, data, "utf-8")  # the first lines are not UTF-8 and declare nothing
        raise EncodingProblem(f"{name}: {error.msg}; {_ADVICE}") from None
    if not _reads_ascii(encoding):
        raise EncodingProblem(f"{name}: declares {encoding}, which Python cannot read source in; {_ADVICE}")
    _raise_for_bad_byte(name, data, encoding)
    return encoding


def decode(data: bytes) -> str:
    """The text of a source file for display (diffs), undecodable bytes replaced."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding, "replace")
    except (SyntaxError, LookupError):
        return data.decode("utf-8", "replace")


_ADVICE = "Python would refuse to import it: fix the file or its coding line (PEP 263), then run bbpatch again"


def _reads_ascii(encoding: str) -> bool:
    """Python reads source only in encodings that read ASCII as ASCII (not UTF-16, UTF-32...)."""
    try:
        return ASCII_PROBE.encode("ascii").decode(encoding) == ASCII_PROBE
    except UnicodeDecodeError:
        return False


def _raise_for_bad_byte(name: object, data: bytes, encoding: str) -> None:
    try:
        data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise EncodingProblem(
            f"{name}: line {line}: byte {data[error.start]:#04x} is not valid {encoding} ({error.reason}); {_ADVICE}"
        ) from None
