"""The corpus of public recipe trees ``make sweep-adopt`` runs on: its manifest and its archives.

The manifest (``adopt_corpus.json`` beside this module) names each tree: repository, commit, where its
``ultralytics/`` package lies in the repository, the release it declares, its family and the sha256 of its
archive. The archives themselves (public code) never enter this repository: ``pack`` rebuilds one, byte for byte,
from a git directory holding that commit (``git clone``; ``--from-git DIR`` reads ``DIR/<owner>+<name>/repo``),
keeping only the package's code and YAMLs, under ``ultralytics/``, with fixed metadata.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = Path(__file__).with_name("adopt_corpus.json")
KEPT_SUFFIXES = (".py", ".yaml", ".yml")
VERSION_LINE = re.compile(rb"""^__version__\s*=\s*["']([^"']+)["']""", re.M)


@dataclass(frozen=True)
class Entry:
    repo: str  # owner/name on GitHub
    commit: str
    package: str  # the ultralytics package's folder inside the repository
    version: str  # the release its __init__.py declares
    family: str  # yolov8, yolo11 or rtdetr: the head most of its own YAMLs use
    sha256: str  # of the archive pack() builds

    @property
    def name(self) -> str:
        return f"{self.repo.replace('/', '+')}@{self.commit[:12]}"

    @property
    def archive_name(self) -> str:
        return f"{self.name}.tar.gz"


def load(manifest: Path = MANIFEST) -> list[Entry]:
    return [Entry(**row) for row in json.loads(manifest.read_text(encoding="utf-8"))["trees"]]


def save(entries: list[Entry], manifest: Path = MANIFEST) -> None:
    rows = [asdict(entry) for entry in sorted(entries, key=lambda e: e.repo.lower())]
    manifest.write_text(json.dumps({"trees": rows}, indent=1) + "\n", encoding="utf-8")


# --- building an archive from git ----------------------------------------------------------------------------------


def _git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True).stdout


def package_files(git_dir: Path, commit: str, package: str) -> dict[str, bytes]:
    """``ultralytics/<path>`` -> bytes for every code and YAML file of the package at that commit (no links)."""
    listing = _git(git_dir, "ls-tree", "-r", "-z", commit, "--", package + "/")
    wanted: dict[str, str] = {}
    for row in filter(None, listing.split(b"\0")):
        meta, path = row.split(b"\t", 1)
        mode, kind, blob = meta.split()
        name = path.decode("utf-8", "surrogateescape")
        if kind == b"blob" and mode in (b"100644", b"100755") and name.endswith(KEPT_SUFFIXES):
            wanted["ultralytics/" + name[len(package) + 1 :]] = blob.decode()
    blobs = _cat_blobs(git_dir, list(wanted.values()))
    return {path: blobs[blob] for path, blob in wanted.items()}


def _cat_blobs(git_dir: Path, blobs: list[str]) -> dict[str, bytes]:
    out = _git_input(git_dir, "".join(f"{b}\n" for b in blobs).encode(), "cat-file", "--batch")
    found, at = {}, 0
    for _ in blobs:
        end = out.index(b"\n", at)
        sha, _kind, size = out[at:end].split()
        start = end + 1
        found[sha.decode()] = out[start : start + int(size)]
        at = start + int(size) + 1
    return found


def _git_input(git_dir: Path, data: bytes, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], input=data, check=True, capture_output=True
    ).stdout


def archive_bytes(files: dict[str, bytes]) -> bytes:
    """A .tar.gz of ``files`` that depends on nothing but their names and bytes (sorted, fixed metadata)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(files[path]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[path]))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def folder_files(root: Path) -> dict[str, bytes]:
    """What ``package_files`` keeps, read from ``root/ultralytics`` on disk (a tree of one's own)."""
    package = root / "ultralytics"
    return {
        f"ultralytics/{path.relative_to(package).as_posix()}": path.read_bytes()
        for path in sorted(package.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.name.endswith(KEPT_SUFFIXES)
    }


def declared_version(files: dict[str, bytes]) -> str:
    found = VERSION_LINE.search(files.get("ultralytics/__init__.py", b""))
    return found.group(1).decode() if found else "unknown"


def family(files: dict[str, bytes], stock: set[str]) -> str:
    """The head most of the tree's own model YAMLs (those not in ``stock``, its release's) use."""
    own = [
        data for path, data in files.items()
        if path.endswith((".yaml", ".yml")) and path not in stock and re.search(rb"^head:", data, re.M)
    ]
    counts = {
        "rtdetr": sum(b"RTDETRDecoder" in data for data in own),
        "yolo11": sum(b"C3k2" in data and b"RTDETRDecoder" not in data for data in own),
    }
    counts["yolov8"] = len(own) - counts["rtdetr"] - counts["yolo11"]
    return max(counts, key=lambda k: (counts[k], k == "yolov8"))


def pack(git_dir: Path, commit: str, package: str, out_dir: Path) -> tuple[Path, dict[str, bytes]]:
    files = package_files(git_dir, commit, package)
    if "ultralytics/nn/tasks.py" not in files:
        raise ValueError(f"{git_dir} {commit[:12]}: no {package}/nn/tasks.py")
    data = archive_bytes(files)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{_repo_of(git_dir)}@{commit[:12]}.tar.gz"
    target = out_dir / name
    target.write_bytes(data)
    return target, files


def _repo_of(git_dir: Path) -> str:
    return git_dir.parent.name  # <owner>+<name>/repo, as the mirrors lay them out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rebuild(entries: list[Entry], git_root: Path, corpus: Path) -> int:
    """Rebuild each listed archive from ``git_root/<owner>+<name>/repo``; 1 when one is missing or differs."""
    status = 0
    for entry in entries:
        git_dir = git_root / entry.repo.replace("/", "+") / "repo"
        try:
            target, _ = pack(git_dir, entry.commit, entry.package, corpus)
        except (OSError, ValueError, subprocess.CalledProcessError) as error:
            print(f"{entry.name}: cannot rebuild ({error})")
            status = 1
            continue
        same = sha256(target) == entry.sha256
        print(f"{entry.name}: {'ok' if same else 'sha256 differs from the manifest'}")
        status |= not same
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bbpatch.releases.adopt_corpus", description=__doc__)
    parser.add_argument("--from-git", type=Path, required=True, help="folder of <owner>+<name>/repo git dirs")
    parser.add_argument("--corpus", type=Path, default=Path(".cache/adopt-corpus"))
    args = parser.parse_args(argv)
    return rebuild(load(), args.from_git, args.corpus)


if __name__ == "__main__":
    sys.exit(main())
