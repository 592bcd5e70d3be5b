"""The library API behind the CLI: apply, revert, status. None of it imports torch, timm or ultralytics."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from bbpatch import __version__, hand_patched
from bbpatch.catalog import package_dir
from bbpatch.edits import EDITS, FILES, AnchorMissing
from bbpatch.edits.import_addmodules import users_import_lines
from bbpatch.encoding import decode, source_encoding
from bbpatch.manifest import CHANGED, CREATED, FileRecord, Manifest, sha256
from bbpatch.paths import outside_link
from bbpatch.paths import read as read_checked
from bbpatch.transaction import commit, locked, prune_empty_dirs, recover_pending
from bbpatch.tree import (
    ADDMODULES,
    LOCK,
    MANIFEST,
    NEWEST_RELEASE,
    OLDEST_RELEASE,
    Tree,
    TreeError,
    find_tree,
    in_tested_range,
)
from bbpatch.yaml_bases import unbuildable

LEFTOVER_MARKS = ("bbpatch_", "ultralytics.nn.Addmodules", "backbone = False")


class HandPatched(TreeError):
    """The tree carries the blog recipe's hand edits: bbpatch will not stack its own on top."""


class RevertRefused(TreeError):
    """The user changed bbpatch's own inserted code: undoing it would need a guess."""


class FileConflict(TreeError):
    """A file bbpatch would create already exists and is not bbpatch's."""


@dataclass
class Report:
    tree: Tree
    # apply: patched / already-patched / updated; revert: reverted / clean;
    # status: clean / patched / drifted / hand-patched
    state: str
    edits: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    diff: str = ""
    bbpatch: str | None = None
    adopted: dict | None = None  # the manifest's adoption record (bbpatch adopt), if any

    def as_dict(self) -> dict:
        return {
            "tree": str(self.tree.package),
            "ultralytics": self.tree.version,
            "state": self.state,
            "bbpatch": self.bbpatch,
            "edits": self.edits,
            "problems": self.problems,
            "notes": self.notes,
            "adopted": self.adopted,
        }


# --- sources ---------------------------------------------------------------------------------------------------------


def _read(tree: Tree, path: Path) -> bytes | None:
    """Every read goes through bbpatch.paths: inside the package, never through a symlink out of it."""
    return read_checked(tree.package, path)


def symlink_notes(tree: Tree) -> list[str]:
    """Patched files that are symlinks out of the package: a write replaces the link, never its target."""
    notes = []
    for key in FILES:
        target = outside_link(tree.package, tree.file(key))
        if target is not None:
            notes.append(
                f"{tree.file(key)} is a symlink to {target}, outside the package: apply replaces the link "
                "with a patched file and leaves the target untouched; revert writes the original as a plain file"
            )
    return notes


def _parse(tree: Tree, key: str, data: bytes) -> cst.Module:
    source_encoding(tree.file(key), data)  # bytes Python itself would reject: one clear line
    try:
        return cst.parse_module(data)
    except cst.ParserSyntaxError as error:
        raise TreeError(
            f"{tree.file(key)}: not valid Python ({error.message}, line {error.raw_line}); fix or reinstall it"
        ) from None


def _edits_for(key: str):
    return [edit for edit in EDITS if edit.file == key]


def patch_source(tree: Tree, key: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    module = _parse(tree, key, data)
    statuses = {}
    for edit in _edits_for(key):
        try:
            module, statuses[edit.name] = edit.apply_with_status(module)
        except AnchorMissing as error:
            raise TreeError(f"{tree.package}/{error}") from None
    return module.bytes, statuses  # in the file's own encoding


def unpatch_source(tree: Tree, key: str, data: bytes) -> bytes:
    """Undo bbpatch's edits only, keeping everything else in the file (the user's later edits included)."""
    module = _parse(tree, key, data)
    users_lines = users_import_lines(module)  # an adopted tree's own recipe imports: not leftovers
    for edit in reversed(_edits_for(key)):
        module = edit.revert(module)
    text = module.code  # rendered once: Module.bytes would render the whole tree again
    leftovers = [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if any(mark in line for mark in LEFTOVER_MARKS) and line.strip() not in users_lines
    ]
    if leftovers:
        raise RevertRefused(
            f"{tree.file(key)}: bbpatch's inserted code was edited since apply (lines {leftovers[:5]}); "
            "undo that by hand or run 'bbpatch revert --force' (restores the original, saves your version beside it)"
        )
    return text.encode(module.encoding)


def edit_statuses(tree: Tree, sources: dict[str, bytes]) -> dict[str, str]:
    statuses = {}
    for key, data in sources.items():
        module = _parse(tree, key, data)
        statuses.update({edit.name: edit.status(module) for edit in _edits_for(key)})
    return statuses


def hand_patch_evidence(sources: dict[str, bytes]) -> list[str]:
    """Signs of the blog recipe (or of bbpatch edits without a manifest) in an unpatched-looking tree."""
    return hand_patched.evidence(sources.get(FILES[0], b"")) + _torch_utils_evidence(sources.get(FILES[1], b""))


def _torch_utils_evidence(data: bytes) -> list[str]:
    """bbpatch's get_flops edit with no manifest (a tree an earlier revert left half done, or a copied file)."""
    if b"backbone" not in data:
        return []
    try:
        module = cst.parse_module(data)
    except (cst.ParserSyntaxError, UnicodeDecodeError):
        return []  # reported by whatever reads it next
    edits = [edit.name for edit in _edits_for(FILES[1]) if edit.applied(module)]
    return [f"torch_utils.py carries bbpatch's {', '.join(edits)} edit without a manifest"] if edits else []


def shipped_files(tree: Tree, modules: str = ADDMODULES) -> dict[str, bytes]:
    """Module files (in ``modules``: nn/Addmodules/bbpatch in an adopted tree) and YAMLs bbpatch installs, keyed by
    their path in the package.

    YAMLs whose stock model the release lacks (YOLO26 before 8.4...) are left out: it could not build them.
    """
    files = {f"{modules}/{p.name}": p.read_bytes() for p in sorted(package_dir("bbpatch.modules").glob("*.py"))}
    yamls = sorted(package_dir("bbpatch.yamls").glob("*.yaml"))
    lacking = unbuildable(tree.package, [p.name for p in yamls])
    files.update({f"{tree.yaml_dir}/{p.name}": p.read_bytes() for p in yamls if p.name not in lacking})
    return files


def _sources(tree: Tree) -> dict[str, bytes]:
    return {key: read_source(tree, key) for key in FILES}


def read_source(tree: Tree, key: str) -> bytes:
    data = _read(tree, tree.file(key))
    if data is None:
        raise TreeError(f"{tree.file(key)}: missing; reinstall ultralytics or check the PATH")
    return data


def read_manifest(tree: Tree) -> Manifest | None:
    data = _read(tree, tree.package / MANIFEST)
    if data is None:
        return None
    try:
        return Manifest.from_bytes(data)
    except (ValueError, KeyError, TypeError) as error:
        raise TreeError(
            f"{tree.package / MANIFEST}: unreadable bbpatch manifest ({error}); restore it from a backup"
        ) from None


def _unified_diff(tree: Tree, key: str, old: bytes | None, new: bytes | None) -> str:
    def lines(data):
        return [] if data is None else decode(data).splitlines(keepends=True)

    name = f"ultralytics/{key}"
    return "".join(difflib.unified_diff(lines(old), lines(new), f"a/{name}", f"b/{name}"))


# --- apply -----------------------------------------------------------------------------------------------------------


def _is_current(tree: Tree, manifest: Manifest) -> bool:
    if manifest.bbpatch != __version__ or manifest.ultralytics != tree.version:
        return False
    return all(sha256(_read(tree, tree.file(key))) == record.patched_sha256 for key, record in manifest.files.items())


def _originals(tree: Tree, current: dict[str, bytes], manifest: Manifest | None) -> dict[str, bytes]:
    """The unpatched sources: as read, from the manifest, or with bbpatch's edits undone structurally."""
    if manifest is None:
        evidence = hand_patch_evidence(current)
        if evidence:
            raise HandPatched(
                f"{tree.file(FILES[0])}: looks patched by hand with the blog recipe ({'; '.join(evidence)}); "
                "restore the original (git checkout, or pip install --force-reinstall ultralytics), "
                "then run bbpatch apply"
            )
        return current
    originals = {}
    for key, data in current.items():
        record = manifest.files.get(key)
        if record and sha256(data) == record.patched_sha256:
            originals[key] = record.original if manifest.adopted is None else _recipe_removed(key, record.original)
        else:
            originals[key] = unpatch_source(tree, key, data)
    return originals


def _recipe_removed(key: str, hand_patched_source: bytes) -> bytes:
    """An adopted tree records the hand-patched files (for revert); bbpatch's edits apply to them, recipe removed."""
    from bbpatch.adoption import recipe_removed

    return recipe_removed(key, hand_patched_source)


def original_sources(tree: Tree, manifest: Manifest) -> dict[str, bytes]:
    """The patched files as they were before apply; after a merge, the merged upstream with the user's own lines."""
    return _originals(tree, _sources(tree), manifest)


def _check_replaceable(tree: Tree, key: str, existing: bytes, record: FileRecord | None) -> None:
    """bbpatch replaces only files it created and nobody changed since."""
    if record is None:
        raise FileConflict(f"{tree.file(key)}: exists and is not bbpatch's; move it away, then run bbpatch apply")
    if sha256(existing) != record.patched_sha256:
        raise FileConflict(
            f"{tree.file(key)}: changed since bbpatch installed it; "
            "move your version to a new file, then run bbpatch apply"
        )


def plan_apply(tree: Tree) -> tuple[Report, dict[Path, bytes | None]]:
    manifest = read_manifest(tree)
    if manifest is not None and _is_current(tree, manifest):
        return Report(tree, "already-patched", dict(manifest.edits), bbpatch=manifest.bbpatch), {}
    if manifest is not None and manifest.adopted is not None:
        from bbpatch.adoption import plan_update

        return plan_update(tree, manifest)
    current = _sources(tree)
    originals = _originals(tree, current, manifest)
    new_manifest = Manifest(__version__, tree.version)
    writes: dict[Path, bytes | None] = {}
    for key, original in originals.items():
        patched, statuses = patch_source(tree, key, original)
        new_manifest.edits.update(statuses)
        if patched != original:
            new_manifest.files[key] = FileRecord.changed(original, patched)
        if patched != current[key]:
            writes[tree.file(key)] = patched
    previously_created = {k for k, r in (manifest.files.items() if manifest else ()) if r.action == CREATED}
    for key, data in shipped_files(tree).items():
        existing = _read(tree, tree.file(key))
        if existing is not None and existing != data:
            _check_replaceable(tree, key, existing, manifest.files.get(key) if key in previously_created else None)
        new_manifest.files[key] = FileRecord.created(data)
        if existing != data:
            writes[tree.file(key)] = data
    for key in previously_created - set(new_manifest.files):  # shipped by an older bbpatch, not by this one
        if sha256(_read(tree, tree.file(key))) == manifest.files[key].patched_sha256:
            writes[tree.file(key)] = None
    writes[tree.package / MANIFEST] = new_manifest.to_bytes()
    state = "patched" if manifest is None else "updated"
    return Report(tree, state, new_manifest.edits, bbpatch=__version__), writes


def diff_of(tree: Tree, writes: dict[Path, bytes | None]) -> str:
    """The unified diff of a plan's writes (the manifest left out), for --dry-run."""
    return "".join(
        _unified_diff(tree, tree.key(p), _read(tree, p), data)
        for p, data in writes.items()
        if p.name != "bbpatch_manifest.json"
    )


read_file = _read
check_replaceable = _check_replaceable


def release_notes(tree: Tree) -> list[str]:
    if in_tested_range(tree.version):
        return []
    return [
        f"ultralytics {tree.version} is outside the tested {OLDEST_RELEASE} .. {NEWEST_RELEASE}: run bbpatch verify"
    ]


def apply(path=None, dry_run: bool = False) -> Report:
    tree = find_tree(path)
    if dry_run:
        recovered = recover_pending(tree.package)
        report, writes = plan_apply(tree)
        report.notes += recovered
        report.diff = "".join(
            _unified_diff(tree, tree.key(p), _read(tree, p), data)
            for p, data in writes.items()
            if not p.name.endswith(".json")
        )
        return report
    with locked(tree.package / LOCK) as recovered:
        report, writes = plan_apply(tree)
        report.notes += recovered + symlink_notes(tree)
        commit(tree.package, writes, "apply")
    report.notes += release_notes(tree)
    return report


# --- revert ----------------------------------------------------------------------------------------------------------


def _revert_changed(tree: Tree, key: str, record: FileRecord, force: bool, report: Report) -> dict[Path, bytes | None]:
    path = tree.file(key)
    data = _read(tree, path)
    digest = sha256(data)
    if digest == record.patched_sha256 or data is None:
        return {path: record.original}
    if digest == record.original_sha256:
        return {}
    try:
        reverted = unpatch_source(tree, key, data)
        report.notes.append(f"{key}: changed since apply; removed bbpatch's edits and kept yours")
        return {path: reverted}
    except RevertRefused:
        if not force:
            raise
        backup = path.with_name(path.name + ".bbpatch-user")
        report.notes.append(f"{key}: restored the original; your edited version is saved as {backup}")
        return {backup: data, path: record.original}


def _unrecorded_edits_undone(tree: Tree, manifest: Manifest) -> dict[Path, bytes]:
    """Patched files the manifest has no record of: a merge re-applied edits to a file apply had left alone."""
    writes = {}
    for key in FILES:
        path = tree.file(key)
        if tree.key(path) in manifest.files or key in manifest.files or not path.is_file():
            continue
        data = path.read_bytes()
        reverted = unpatch_source(tree, key, data)
        if reverted != data:
            writes[path] = reverted
    return writes


def revert(path=None, force: bool = False) -> Report:
    tree = find_tree(path)
    with locked(tree.package / LOCK) as recovered:
        manifest = read_manifest(tree)
        if manifest is None:
            current = _sources(tree)
            evidence = hand_patch_evidence(current)
            if evidence:
                raise HandPatched(
                    f"{tree.file(FILES[0])}: patched by hand, not by bbpatch ({'; '.join(evidence)}); "
                    "nothing of bbpatch's "
                    "to revert: restore it with git checkout or pip install --force-reinstall ultralytics"
                )
            return Report(tree, "clean", notes=[*recovered, "not patched: nothing to revert"])
        report = Report(tree, "reverted", bbpatch=manifest.bbpatch, notes=list(recovered))
        writes: dict[Path, bytes | None] = {}
        for key, record in manifest.files.items():
            if record.action == CHANGED:
                writes.update(_revert_changed(tree, key, record, force, report))
            elif sha256(_read(tree, tree.file(key))) == record.patched_sha256:
                writes[tree.file(key)] = None
            elif tree.file(key).exists():
                report.notes.append(f"{key}: changed since apply; kept")
        writes.update(_unrecorded_edits_undone(tree, manifest))
        writes[tree.package / MANIFEST] = None
        commit(tree.package, writes, "revert")
        for directory in {tree.file(key).parent for key in manifest.files} | {tree.package / ADDMODULES}:
            prune_empty_dirs(directory, stop=tree.package)
    return report


# --- status ----------------------------------------------------------------------------------------------------------


def carries_all_edits(tree: Tree, sources: dict[str, bytes]) -> tuple[bool, dict[str, str]]:
    """Every edit applied (or not needed) in ``sources``: the tree is fully patched, whatever the manifest says."""
    statuses = edit_statuses(tree, sources)
    return all(state in ("applied", "n/a") for state in statuses.values()), statuses


def _check_release_change(tree: Tree, manifest: Manifest, report: Report) -> None:
    """A new release under the patch: fine when a merge re-applied every edit (the merge driver does), else drift."""
    intact, statuses = carries_all_edits(tree, _sources(tree))
    if intact:
        report.edits.update(statuses)
        new_files = [key for key in shipped_files(tree) if not tree.file(key).exists()]
        extra = f" and installs the {len(new_files)} files this release adds (YAMLs)" if new_files else ""
        report.notes.append(
            f"ultralytics {manifest.ultralytics} -> {tree.version} since apply, every edit re-applied by a merge; "
            f"'bbpatch apply' refreshes the manifest's record{extra}"
        )
    else:
        report.problems.append(
            f"ultralytics changed from {manifest.ultralytics} to {tree.version} since apply; run bbpatch apply"
        )


def status(path=None) -> Report:
    tree = find_tree(path)
    first_notes = recover_pending(tree.package) + symlink_notes(tree)
    manifest = read_manifest(tree)
    if manifest is None:
        current = _sources(tree)
        statuses = edit_statuses(tree, current)
        evidence = hand_patch_evidence(current)
        return Report(tree, "hand-patched" if evidence else "clean", statuses, notes=first_notes + evidence)
    notes = first_notes + release_notes(tree)
    if manifest.adopted is not None:
        from bbpatch.adoption import status_note

        notes.append(status_note(manifest))
    report = Report(
        tree, "patched", dict(manifest.edits), bbpatch=manifest.bbpatch, notes=notes, adopted=manifest.adopted
    )
    if manifest.ultralytics != tree.version:
        _check_release_change(tree, manifest, report)
    for key, record in manifest.files.items():
        data = _read(tree, tree.file(key))
        if sha256(data) == record.patched_sha256:
            continue
        if data is None:
            report.problems.append(f"{key}: missing (bbpatch {record.action} it)")
        elif record.action == CREATED:
            report.problems.append(f"{key}: changed since apply")
        else:
            module = _parse(tree, key, data)
            for edit in _edits_for(key):
                report.edits[edit.name] = edit.status(module)
                if report.edits[edit.name] not in ("applied", "n/a"):
                    report.problems.append(f"{key}: edit '{edit.name}' is {report.edits[edit.name]} ({edit.summary})")
            if not report.problems:
                report.notes.append(f"{key}: changed since apply, bbpatch's edits intact")
    if report.problems:
        report.state = "drifted"
    return report
