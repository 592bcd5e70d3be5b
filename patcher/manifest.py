"""The record bbpatch keeps in the tree: what it created or changed, with hashes and the original bytes."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

CREATED, CHANGED = "created", "changed"


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


@dataclass
class FileRecord:
    action: str  # CREATED or CHANGED
    patched_sha256: str
    original_sha256: str | None = None
    original_b64: str | None = None

    @property
    def original(self) -> bytes | None:
        return None if self.original_b64 is None else base64.b64decode(self.original_b64)

    @classmethod
    def changed(cls, original: bytes, patched: bytes) -> FileRecord:
        return cls(CHANGED, sha256(patched), sha256(original), base64.b64encode(original).decode("ascii"))

    @classmethod
    def created(cls, patched: bytes) -> FileRecord:
        return cls(CREATED, sha256(patched))


@dataclass
class Manifest:
    bbpatch: str
    ultralytics: str
    edits: dict[str, str] = field(default_factory=dict)  # edit name -> status after apply
    files: dict[str, FileRecord] = field(default_factory=dict)  # path relative to the package

    def to_bytes(self) -> bytes:
        data = {
            "bbpatch": self.bbpatch,
            "ultralytics": self.ultralytics,
            "edits": self.edits,
            "files": {k: vars(v) for k, v in sorted(self.files.items())},
        }
        return (json.dumps(data, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        files = {k: FileRecord(**v) for k, v in raw["files"].items()}
        return cls(raw["bbpatch"], raw["ultralytics"], raw.get("edits", {}), files)
