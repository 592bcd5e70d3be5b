"""The hook's code cache: one file per tree state, keyed like pytest's rewritten-assertion cache.

A key covers the bytes and paths of the two patched files, bbpatch's version and the files its edits come
from (by size and mtime), and the Python version and bytecode magic. An entry is ``marshal`` data (the
compiled code objects, or the reason to stand aside) behind a header holding its SHA-256: a truncated or
otherwise broken file fails the check and is ignored (then rewritten). Writes go to a temporary file renamed
into place, so two processes filling the cache at once each leave a whole entry; a cache directory that
cannot be written is no error: the hook patches in memory every time instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import sys
import tempfile
from pathlib import Path

import bbpatch

MAGIC = b"bbpatch-hook-cache 1\n"
DIGEST_SIZE = 32
CACHE_VARIABLE = "BBPATCH_CACHE_DIR"
# what the patched code depends on besides the tree: bbpatch's edit engine and templates, its YAML list
# The rooms the compiled code is made from (the compiler imports only these: tests/test_hook.py checks it), and
# the data it reads: a change to any file in them recompiles.
ENGINE_ROOMS = ("engine", "engine/edits", "models", "hook")
ENGINE_PACKAGES = ("bbpatch.templates.edits", "bbpatch.yamls")


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_VARIABLE)
    if explicit:
        return Path(explicit)
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "bbpatch" / "hook"


def package_folder(name: str) -> Path | None:
    """A bbpatch subpackage's folder, editable or installed, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _stats(folder: Path | None, names=None) -> list:
    if folder is None:
        return ["missing"]
    entries = []
    try:
        with os.scandir(folder) as found:
            for entry in found:
                if (names is None and entry.is_file()) or (names is not None and entry.name in names):
                    stat = entry.stat()
                    entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    except OSError:
        return ["unreadable"]
    return sorted(entries)


def engine_fingerprint() -> str:
    """bbpatch's version and the stats of the files the patched code is made from: a new bbpatch recompiles."""
    parts = [bbpatch.__version__, *(_stats(folder) for folder in fingerprint_folders())]
    return repr(parts)


def fingerprint_folders() -> list[Path | None]:
    bbpatch_dir = Path(bbpatch.__file__).parent
    return [bbpatch_dir / room for room in ENGINE_ROOMS] + [package_folder(name) for name in ENGINE_PACKAGES]


def entry_key(sources: dict[str, tuple[Path, bytes]]) -> str:
    digest = hashlib.sha256(engine_fingerprint().encode())
    digest.update(f"{sys.implementation.cache_tag} {sys.version} -O{sys.flags.optimize} ".encode())
    digest.update(importlib.util.MAGIC_NUMBER)
    for key, (path, data) in sorted(sources.items()):
        digest.update(f"\0{key}\0{path}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def entry_file(key: str) -> Path:
    return cache_dir() / sys.implementation.cache_tag / f"{key}.bin"


def load(key: str) -> dict | None:
    """The entry stored under ``key``, or None when there is none or it is broken in any way."""
    path = entry_file(key)
    try:
        if not trusted(path):
            return None
        data = path.read_bytes()
    except OSError:
        return None
    entry = decode_entry(data)
    return entry if entry is not None and entry.get("key") == key else None


def trusted(path) -> bool:
    """Code this process may run: a file of its own user that no one else can write (a shared cache folder
    could otherwise hand it anyone's code objects). Raises OSError when the file is missing."""
    info = os.stat(path)
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    return info.st_uid == owner and not info.st_mode & 0o022


def encode_entry(key: str, entry: dict) -> bytes:
    payload = marshal.dumps({**entry, "key": key})
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode_entry(data: bytes) -> dict | None:
    header = len(MAGIC) + DIGEST_SIZE
    if not data.startswith(MAGIC) or len(data) < header:
        return None
    payload = data[header:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : header]:
        return None
    try:
        entry = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return entry if isinstance(entry, dict) else None


def store(key: str, entry: dict) -> bool:
    """Write the entry atomically; False (and nothing left behind) when the cache cannot be written."""
    data = encode_entry(key, entry)
    target = entry_file(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:16]}-", suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
        return True
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False
