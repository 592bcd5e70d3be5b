"""The record bbpatch keeps in the tree: what it created or changed, with hashes and the original bytes.

A manifest is data from disk (it travels through ``git pull`` and archives), so ``Manifest.from_bytes``
validates it before anything acts on it: known fields and actions, hashes in their format, the original bytes
matching their hash, and paths that are relative, normalised, and among those bbpatch itself writes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field

from bbpatch.disk.paths import UnsafePath, check_key
from bbpatch.engine.edits.base import TASKS, TORCH_UTILS

CREATED, CHANGED = "created", "changed"
# What bbpatch writes: the files it patches (torch_utils under yolo/ up to 8.0.135) and files in its own folders.
CHANGED_KEYS = frozenset({TASKS, TORCH_UTILS, f"yolo/{TASKS}", f"yolo/{TORCH_UTILS}"})
CREATED_FOLDERS = ("nn/Addmodules/", "cfg/models/Addmodules/")
SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """The manifest is not one bbpatch wrote: nothing acts on it."""


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
    # bbpatch adopt: {"from": what the tree was, "modules": bbpatch's package folder,
    #                 "backbones": {name: {"channels": attribute, "args": bool}}} (bbpatch.adopt.adoption)
    adopted: dict | None = None

    def to_bytes(self) -> bytes:
        data = {
            "bbpatch": self.bbpatch,
            "ultralytics": self.ultralytics,
            "edits": self.edits,
            "files": {k: vars(v) for k, v in sorted(self.files.items())},
        }
        if self.adopted is not None:
            data["adopted"] = self.adopted
        return (json.dumps(data, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """The manifest in ``data``; ManifestError (one line, naming the bad entry) if it is not valid."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise ManifestError(f"not JSON ({error})") from None
        _require(isinstance(raw, dict), "not a JSON object")
        for name in ("bbpatch", "ultralytics"):
            _require(isinstance(raw.get(name), str) and raw[name], f"'{name}' must be a non-empty string")
        edits = raw.get("edits", {})
        _require(
            isinstance(edits, dict) and all(isinstance(v, str) for v in edits.values()),
            "'edits' must map edit names to strings",
        )
        _require(isinstance(raw.get("files"), dict), "'files' must be an object")
        files = {key: _record(key, value) for key, value in raw["files"].items()}
        return cls(raw["bbpatch"], raw["ultralytics"], edits, files, _adopted(raw.get("adopted")))


def _require(condition: object, problem: str) -> None:
    if not condition:
        raise ManifestError(problem)


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _adopted(value: object) -> dict | None:
    """The adoption record: names that become Python source in the registry file adopt writes, so identifiers only."""
    if value is None:
        return None
    _require(isinstance(value, dict) and isinstance(value.get("from"), str), "'adopted' must say what it was from")
    _require(value.get("modules") in ("nn/Addmodules", "nn/Addmodules/bbpatch"), "'adopted': unknown 'modules'")
    backbones = value.get("backbones")
    _require(isinstance(backbones, dict), "'adopted': 'backbones' must be an object")
    for name, entry in backbones.items():
        _require(
            IDENTIFIER.fullmatch(name)
            and isinstance(entry, dict)
            and isinstance(entry.get("channels"), str)
            and IDENTIFIER.fullmatch(entry["channels"])
            and isinstance(entry.get("args"), bool),
            f"'adopted': backbone {name!r} must be an identifier with 'channels' (identifier) and 'args' (bool)",
        )
    imported = value.get("imported", [])
    _require(
        isinstance(imported, list) and all(isinstance(n, str) and IDENTIFIER.fullmatch(n) for n in imported),
        "'adopted': 'imported' must list identifiers",
    )
    return value


def _record(key: str, value: object) -> FileRecord:
    try:
        check_key(key)
    except UnsafePath as error:
        raise ManifestError(f"files: {error}") from None
    _require(isinstance(value, dict), f"files[{key!r}]: not an object")
    unknown = set(value) - {"action", "patched_sha256", "original_sha256", "original_b64"}
    _require(not unknown, f"files[{key!r}]: unknown fields {sorted(unknown)}")
    record = FileRecord(**{"action": None, "patched_sha256": None, **value})
    _require(record.action in (CREATED, CHANGED), f"files[{key!r}]: unknown action {record.action!r}")
    _require(_is_sha256(record.patched_sha256), f"files[{key!r}]: patched_sha256 is not a SHA-256 hex digest")
    if record.action == CREATED:
        _require(key.startswith(CREATED_FOLDERS), f"files[{key!r}]: bbpatch creates files only in {CREATED_FOLDERS}")
        _require(
            record.original_sha256 is None and record.original_b64 is None,
            f"files[{key!r}]: created, yet has an original",
        )
    else:
        _require(key in CHANGED_KEYS, f"files[{key!r}]: bbpatch changes only {sorted(CHANGED_KEYS)}")
        _require(_is_sha256(record.original_sha256), f"files[{key!r}]: original_sha256 is not a SHA-256 hex digest")
        _require(
            sha256(_original(key, record)) == record.original_sha256,
            f"files[{key!r}]: original bytes do not match original_sha256",
        )
    return record


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


def _original(key: str, record: FileRecord) -> bytes:
    try:
        return base64.b64decode(record.original_b64, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ManifestError(f"files[{key!r}]: original_b64 is not base64") from None
