"""The import paths of bbpatch 0.3, for the modules that moved into rooms in 0.4 (docs/architecture.md).

``import bbpatch.tree`` and ``python -m bbpatch.sweep`` keep working until 0.5, with a DeprecationWarning: the
old name is the new module itself (one module object, so ``isinstance`` and monkeypatching still agree), never a
copy. One finder on ``sys.meta_path`` answers for these names only; every other import passes it at the cost of a
prefix test. Nothing else imports this module.
"""

import sys

# old name -> new name, both under "bbpatch."; a package's old name also covers its submodules
MOVED = {
    "tree": "engine.tree",
    "cst": "engine.cst",
    "matchers": "engine.matchers",
    "encoding": "engine.encoding",
    "hand_patched": "engine.hand_patched",
    "recipe": "engine.recipe",
    "edits": "engine.edits",
    "paths": "disk.paths",
    "manifest": "disk.manifest",
    "journal": "disk.journal",
    "transaction": "disk.transaction",
    "import_order": "disk.import_order",
    "catalog": "models.catalog",
    "yamlgen": "models.yamlgen",
    "yaml_bases": "models.yaml_bases",
    "base_model": "models.base_model",
    "strides": "models.strides",
    "layer_probe": "models.layer_probe",
    "gitrepo": "git.repo",
    "gitsetup": "git.setup",
    "githook": "git.post_merge",
    "merge": "git.merge",
    "resolve": "git.resolve",
    "adoption": "adopt.adoption",
    "cli_git": "cli.git",
    "cli_hook": "cli.hook",
    "cli_models": "cli.models",
    "cli_verify": "cli.verify",
    "bench": "benchmarks.table",
    "sweep": "releases.sweep",
    "upstream_tests": "releases.upstream_tests",
}


def new_name(fullname: str):
    if not fullname.startswith("bbpatch."):
        return None
    name = fullname[8:]
    if name in MOVED:
        return "bbpatch." + MOVED[name]
    head, _, rest = name.partition(".")
    if rest and head in MOVED:
        return f"bbpatch.{MOVED[head]}.{rest}"
    return None


class MovedModules:
    """Finds an old name and loads it as the module that now holds its code."""

    bbpatch_moved = True  # how install() recognises an earlier instance

    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        if new is None:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(fullname, Alias(new))


class Alias:
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import importlib
        import warnings

        warnings.warn(
            f"{module.__name__} moved to {self.new} in bbpatch 0.4; the old name goes in 0.5",
            DeprecationWarning,
            stacklevel=2,
        )
        sys.modules[module.__name__] = importlib.import_module(self.new)  # the import system hands out this one

    def get_code(self, fullname):
        """``python -m OLD_NAME`` runs the new module as __main__."""
        source = f"import runpy; runpy.run_module({self.new!r}, run_name='__main__', alter_sys=True)"
        return compile(source, f"<{fullname}: moved to {self.new}>", "exec")


def install() -> None:
    if not any(getattr(finder, "bbpatch_moved", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
