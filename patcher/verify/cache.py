"""``verify --fast`` remembers which YAMLs built, keyed by everything a build depends on.

A pre-commit hook runs on every commit; rebuilding 50 unchanged models each time is what makes it slow.
A key covers every ``.py`` file of the ultralytics tree (the patched files and ``Addmodules`` included),
the YAML's bytes, and the versions of Python, torch, torchvision, timm and numpy: any change to any of
them rebuilds. Only passing builds are remembered. ``--no-cache`` ignores the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

DEPENDENCIES = ("torch", "torchvision", "timm", "numpy")


def cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "bbpatch" / "verify-fast.json"


def tree_digest(package: Path) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for name in DEPENDENCIES:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing".encode())
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def build_key(tree: str, yaml: str) -> str:
    file = Path(yaml)
    content = file.read_bytes() if file.is_file() else b"stock"
    return hashlib.sha256(tree.encode() + yaml.encode() + content).hexdigest()


class BuildCache:
    def __init__(self, file: Path | None = None):
        self.file = file or cache_file()
        try:
            entries = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        # anyone's file: only string details under string keys count, anything else is as if never remembered
        valid = isinstance(entries, dict)
        self.entries = {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, str)} if valid else {}

    def get(self, key):
        return self.entries.get(key)

    def put(self, key, detail):
        self.entries[key] = detail

    def save(self):
        """Write the entries atomically, through a temp file of this process's own (two verify runs may save at
        once: the last one wins). A cache that cannot be written is only slower next time: never an error."""
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.file.parent, suffix=".tmp", delete=False) as temporary:
                temporary.write(json.dumps(self.entries))
            os.replace(temporary.name, self.file)
        except OSError:
            with contextlib.suppress(OSError, NameError):
                os.unlink(temporary.name)
