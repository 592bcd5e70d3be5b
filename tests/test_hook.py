"""Zero-write mode (bbpatch enable): real venvs holding real ultralytics release wheels, bbpatch installed into
them with pip, every check in a fresh interpreter of that venv (the .pth file is read at start-up)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from filelock import FileLock

from bbpatch import api
from bbpatch.hook import cache, compiler
from bbpatch.hook.environment import MARKER, PTH_NAME
from bbpatch.verify.dataset import offline_environment, write_dataset
from tests.conftest import RELEASE_CACHE, copy_package, release_package
from tests.helpers import ISOLATED_ENV

WORKTREE = Path(__file__).resolve().parent.parent
MAIN_SITE = Path(importlib.util.find_spec("torch").origin).parents[1]  # torch, timm, libcst, pip live here
MAIN_PYTHON = MAIN_SITE.parents[2] / "bin" / "python"  # its setuptools builds wheels (this venv's may not)
RELEASES = ("8.1.47", "8.4.190")
FAMILIES = ("mobilenetv1", "mobilenetv2", "mobilenetv3", "mobilenetv4", "fasternet", "mobileone")
ASIDE = "bbpatch: the import hook stands aside"


def wheel(version: str) -> Path:
    release_package(version)  # downloads the wheel once
    return next((RELEASE_CACHE / "wheels").glob(f"ultralytics-{version}-*.whl"))


@pytest.fixture(scope="session")
def bbpatch_wheel(tmp_path_factory) -> Path:
    """This checkout's bbpatch as a wheel, built once a run: xdist workers share it (pip builds in the checkout)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build_wheel(tmp_path_factory.mktemp("wheel"))
    run_folder = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers alone
    with FileLock(str(run_folder / "bbpatch-wheel.lock")):
        built = next((run_folder / "bbpatch-wheel").glob("bbpatch-*.whl"), None)
        return built or build_wheel(run_folder / "bbpatch-wheel")


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [str(MAIN_PYTHON), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
        + [str(WORKTREE)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("bbpatch-*.whl"))


class Venv:
    """A real venv: the main venv's packages layered under it, bbpatch and one ultralytics wheel its own."""

    def __init__(self, root: Path, version: str, bbpatch_wheel: Path):
        self.root, self.cache = root / "venv", root / "hook-cache"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.root)], check=True)
        self.python = self.root / "bin" / "python"
        self.site = Path(self.run("import sysconfig; print(sysconfig.get_path('purelib'))").strip())
        # The main venv's packages by path only, not by its .pth files: they hold the editable bbpatch of the
        # checkout running the tests, which would outlive an uninstall of this venv's own bbpatch.
        (self.site / "00-main-venv.pth").write_text(f"import sys; sys.path.append({str(MAIN_SITE)!r})\n")
        self.pip("install", "--no-deps", str(bbpatch_wheel))
        self.install_release(version)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BBPATCH_", "PYTHON", "VIRTUAL_ENV"))}
        self.env.update(ISOLATED_ENV, BBPATCH_CACHE_DIR=str(self.cache))
        self.env.update(offline_environment(root / "yolo-config"))

    @property
    def package(self) -> Path:
        return self.site / "ultralytics"

    def pip(self, *args):
        subprocess.run([str(self.python), "-m", "pip", "-q", *args], check=True, capture_output=True)

    def install_release(self, version: str):
        self.pip("install", "--no-deps", "--force-reinstall", str(wheel(version)))

    def process(self, code: str, env=None, args=()) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), *(args or ["-c", textwrap.dedent(code)])],
            env={**getattr(self, "env", os.environ), **(env or {})},
            cwd=self.root.parent,
            capture_output=True,
            text=True,
            timeout=900,
        )

    def run(self, code: str, env=None, args=()) -> str:
        result = self.process(code, env, args)
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        self.stderr = result.stderr
        return result.stdout

    def run_json(self, code: str, env=None, args=()):
        return json.loads(self.run(code, env, args).strip().splitlines()[-1])

    def bbpatch(self, *args) -> str:
        """Run the venv's bbpatch; ``status`` of a tree clean on disk exits 3 (hooked or not), the rest 0."""
        result = self.process("", args=["-m", "bbpatch", *args])
        assert result.returncode in ((0, 3) if args[0] == "status" else (0,)), result.stdout + result.stderr
        return result.stdout

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*"))


def digest(folder: Path) -> str:
    """Every byte and name under ``folder``, bytecode caches included."""
    sha = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        sha.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            sha.update(path.read_bytes())
    return sha.hexdigest()


@pytest.fixture
def make_venv(tmp_path, bbpatch_wheel):
    made = []

    def make(version: str, name: str = "env") -> Venv:
        made.append(Venv(tmp_path / name, version, bbpatch_wheel))
        return made[-1]

    yield make
    for venv in made:  # whatever a test left immutable must go away with tmp_path
        subprocess.run(["chattr", "-R", "-i", str(venv.root.parent)], capture_output=True)


HOOKED = """
    import json, sys
    from ultralytics import YOLO
    import ultralytics.nn.tasks as tasks
    print(json.dumps({"loader": type(tasks.__loader__).__name__, "libcst": "libcst" in sys.modules}))
"""

BUILDS = """
    import json, sys, torch
    from ultralytics import YOLO
    import ultralytics.nn.tasks as tasks
    out = {"loader": type(tasks.__loader__).__name__, "libcst": "libcst" in sys.modules, "families": {}}
    for family in %r:
        model = YOLO(f"yolov8n-{family}.yaml").model
        y = model.eval()(torch.zeros(1, 3, 64, 64))
        out["families"][family] = [type(model.model[0]).__module__, tuple(y[0].shape)]
    torch.manual_seed(0)
    stock = YOLO("yolov8n.yaml").model
    out["stock"] = sum(float(t.double().sum()) * (i + 1) for i, t in enumerate(stock.state_dict().values()))
    print(json.dumps(out))
""" % (FAMILIES,)

STOCK = """
    import json, torch
    from ultralytics import YOLO
    torch.manual_seed(0)
    stock = YOLO("yolov8n.yaml").model
    print(json.dumps(sum(float(t.double().sum()) * (i + 1) for i, t in enumerate(stock.state_dict().values()))))
"""


@pytest.mark.parametrize("version", RELEASES)
def test_enable_builds_every_family_and_writes_nothing(make_venv, version):
    venv = make_venv(version)
    before = digest(venv.package)
    enabled = venv.bbpatch("enable")
    assert f"patches ultralytics {version}" in enabled and (venv.site / PTH_NAME).is_file()
    cold = venv.run_json(BUILDS)
    warm = venv.run_json(BUILDS)
    assert cold["loader"] == warm["loader"] == "PatchedLoader"
    assert not warm["libcst"], "a warm cache must not import libcst"
    for family in FAMILIES:
        module, shape = warm["families"][family]
        assert module == "ultralytics.nn.Addmodules.timm_backbones", family
        assert shape[0] == 1 and shape[1] == 4 + 80, (family, shape)
    assert warm["stock"] == venv.run_json(STOCK, env={"BBPATCH_DISABLE": "1"}), "stock yolov8n differs under the hook"
    assert ASIDE not in venv.stderr
    assert digest(venv.package) == before, "the hook wrote into the installed ultralytics"
    status = venv.bbpatch("status")
    assert "hook: on" in status and f"patches ultralytics {version}" in status and "code cache warm" in status


PREDICT = """
    import json, sys, torch
    from ultralytics import YOLO
    model = YOLO(sys.argv[1]).model.float().eval()
    torch.manual_seed(0)
    y = model(torch.rand(1, 3, 64, 64))[0]
    print(json.dumps({"module": type(model.model[0]).__module__, "sum": float(y.double().sum()),
                      "file": sys.modules[type(model.model[0]).__module__].__file__}))
"""


def test_yolo_cli_trains_then_checkpoints_reload_and_interchange_with_an_applied_tree(make_venv, tmp_path):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")
    data = write_dataset(tmp_path / "data")
    train = f"model=yolov8n-mobilenetv4.yaml data={data} epochs=1 imgsz=64 batch=4 workers=0 device=cpu plots=False"
    train += f" val=False amp=False pretrained=False project={tmp_path / 'runs'} name=run exist_ok=True seed=0"
    yolo = subprocess.run(  # the yolo CLI, a console script of the venv: its own interpreter start-up
        [str(venv.root / "bin" / "yolo"), "train", *train.split()], env=venv.env, capture_output=True, text=True
    )
    assert yolo.returncode == 0, yolo.stdout[-3000:] + yolo.stderr[-3000:]
    hooked_ckpt = str(tmp_path / "runs" / "run" / "weights" / "last.pt")
    assert Path(hooked_ckpt).is_file(), yolo.stdout[-3000:]
    under_hook = venv.run_json(PREDICT, args=["-c", textwrap.dedent(PREDICT), hooked_ckpt])
    assert under_hook["module"] == "ultralytics.nn.Addmodules.timm_backbones"

    applied = copy_package(release_package("8.4.190"), tmp_path / "applied")
    api.apply(applied)
    in_applied = run_in_tree(applied, PREDICT, hooked_ckpt)
    assert in_applied["file"].startswith(str(applied)), "the applied tree loaded the checkpoint through the hook"
    assert in_applied["sum"] == under_hook["sum"], "the same checkpoint predicts differently in an applied tree"

    applied_ckpt = str(tmp_path / "applied.pt")
    save = "from ultralytics import YOLO; import sys; YOLO('yolov8n-fasternet.yaml').save(sys.argv[1])"
    run_in_tree(applied, save, applied_ckpt)
    from_applied = venv.run_json(PREDICT, args=["-c", textwrap.dedent(PREDICT), applied_ckpt])
    assert from_applied["file"].startswith(str(venv.site / "bbpatch" / "modules"))
    assert from_applied["sum"] == run_in_tree(applied, PREDICT, applied_ckpt)["sum"]


def run_in_tree(root: Path, code: str, *args):
    """The applied copy, imported by this (bbpatch's test) interpreter, which has no hook."""
    env = {**os.environ, **ISOLATED_ENV, **offline_environment(root / "yolo-config"), "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def test_immutable_package_then_a_new_release_works_with_nothing_re_run(make_venv):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")
    subprocess.run(["chattr", "-R", "+i", str(venv.package)], check=True)
    try:
        with pytest.raises(PermissionError):
            (venv.package / "probe").write_text("x")
        assert venv.run_json(HOOKED)["loader"] == "PatchedLoader"
        assert venv.run("from ultralytics import YOLO; print(YOLO('yolo11n-mobileone.yaml').model.yaml['backbone'])")
    finally:
        subprocess.run(["chattr", "-R", "-i", str(venv.package)], check=True)
    entries = len(list(venv.cache.rglob("*.bin")))
    venv.install_release("8.3.100")  # what pip install -U does; no bbpatch command afterwards
    assert venv.run_json(HOOKED)["loader"] == "PatchedLoader"
    assert len(list(venv.cache.rglob("*.bin"))) == entries + 1, "the new release's code compiled once, cached"
    assert venv.run("import ultralytics; from ultralytics import YOLO; YOLO('yolov8n-mobilenetv3.yaml'); "
                    "print(ultralytics.__version__)").strip().endswith("8.3.100")  # fmt: skip
    assert "patches ultralytics 8.3.100" in venv.bbpatch("status")


CHILD = """
    import json, subprocess, sys
    code = "import ultralytics.nn.tasks as t; print(type(t.__loader__).__name__)"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    print(json.dumps(child.stdout.strip()))
"""

DDP = """
    import os, torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from ultralytics import YOLO
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(YOLO("yolov8n-mobilenetv4.yaml").model.train())
    torch.manual_seed(dist.get_rank())
    def total(y):
        if isinstance(y, torch.Tensor):
            return y.sum()
        return sum(total(v) for v in (y.values() if isinstance(y, dict) else y))
    loss = total(model(torch.rand(2, 3, 64, 64)))
    loss.backward()
    grad = next(p.grad for p in model.parameters() if p.grad is not None).clone()
    gathered = [torch.zeros_like(grad) for _ in range(2)]
    dist.all_gather(gathered, grad)
    assert torch.equal(gathered[0], gathered[1]), "gradients not averaged"
    if dist.get_rank() == 0:
        print("ddp-ok", type(model.module.model[0]).__module__)
    dist.destroy_process_group()
"""


def test_children_and_ddp_see_it_and_disable_restores_the_venv(make_venv, tmp_path):
    venv = make_venv("8.4.190")
    files = venv.files()
    venv.bbpatch("enable")
    assert venv.run_json(CHILD) == "PatchedLoader"
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP))
    port = free_port()
    out = venv.run("", args=["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", str(script)])
    assert "ddp-ok ultralytics.nn.Addmodules.timm_backbones" in out
    assert venv.run_json(HOOKED, env={"BBPATCH_DISABLE": "1"})["loader"] == "SourceFileLoader"
    assert "disabled" in venv.bbpatch("disable")
    assert venv.run_json(HOOKED)["loader"] == "SourceFileLoader"
    leftover = [f for f in set(venv.files()) - set(files) if "__pycache__" not in f]
    assert not leftover and not set(files) - set(venv.files()), leftover
    assert "not enabled" in venv.bbpatch("disable")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_left_behind_pth_is_harmless_once_bbpatch_is_gone(make_venv):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")
    venv.pip("uninstall", "-y", "bbpatch")
    result = venv.process("import ultralytics.nn.tasks as t; print(type(t.__loader__).__name__)")
    assert result.returncode == 0 and result.stdout.strip() == "SourceFileLoader" and not result.stderr.strip()
    assert (venv.site / PTH_NAME).read_text().startswith(MARKER)


def test_verify_and_bench_prove_the_in_memory_patch(make_venv, tmp_path):
    venv = make_venv("8.4.190")
    refused = venv.process("", args=["-m", "bbpatch", "verify", "--fast", "--yaml", "yolov8-mobilenetv4"])
    assert refused.returncode == 2 and "bbpatch enable" in refused.stderr, refused.stderr
    venv.bbpatch("enable")
    before = digest(venv.package)
    verify = ["verify", "--json", "--formats", "none", "--yaml", "yolov8-mobilenetv4", "--check", "reload,parity"]
    result = venv.process("", args=["-m", "bbpatch", *verify])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    statuses = {(r["subject"], r["check"]): r["status"] for r in json.loads(result.stdout)["results"]}
    for check in (("tree", "edits"), ("tree", "hook"), ("yolov8-mobilenetv4.yaml", "train")):
        assert statuses[check] == "pass", (check, statuses)
    assert statuses[("yolov8-mobilenetv4.yaml", "reload")] == statuses[("yolov8n.yaml", "parity")] == "pass"
    out = tmp_path / "bench.json"
    bench = ["bench", "--yaml", "yolov8-mobilenetv4", "--no-deploy", "--runs", "1", "--warmup", "0", "--stock", ""]
    bench += ["--imgsz", "64", "--json", str(out), "--plot", str(tmp_path / "b.png"), "--table", str(tmp_path / "b.md")]
    venv.bbpatch(*bench)
    [measured] = json.loads(out.read_text())["pytorch"]
    assert measured["params"] == 2_575_200 and not measured["error"], measured  # the hooked build, measured
    assert digest(venv.package) == before


# --- hostile ---------------------------------------------------------------------------------------------------------


def test_a_release_the_edits_cannot_fit_stands_aside_with_one_warning(make_venv):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")
    tasks = venv.package / "nn" / "tasks.py"
    text = tasks.read_text()
    loop = 'in enumerate(d["backbone"] + d["head"]):'
    assert loop in text
    tasks.write_text(text.replace(loop, 'in tuple(enumerate(d["backbone"] + d["head"])):'))  # the loop anchor moved
    code = """
        import json, sys, torch
        from ultralytics import YOLO
        import ultralytics.nn.tasks as tasks
        torch.manual_seed(0)
        stock = YOLO("yolov8n.yaml").model
        try:
            YOLO("yolov8n-mobilenetv4.yaml")
            shipped = "found"
        except FileNotFoundError:
            shipped = "not found"
        loader = type(tasks.__loader__).__name__
        print(json.dumps({"loader": loader, "shipped": shipped, "libcst": "libcst" in sys.modules}))
    """
    for _cold_then_warm in range(2):
        out = venv.run_json(code)
        warnings = [line for line in venv.stderr.splitlines() if ASIDE in line]
        assert len(warnings) == 1 and "parse_model" in warnings[0], venv.stderr[-3000:]
        assert out["loader"] == "SourceFileLoader" and out["shipped"] == "not found", out
    assert not out["libcst"], "the decision to stand aside is cached too"
    assert "stands aside for ultralytics 8.4.190" in venv.bbpatch("status")


def test_a_tree_patched_on_disk_wins(make_venv):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")
    venv.bbpatch("apply", str(venv.package))
    out = venv.run_json(PREDICT.replace("YOLO(sys.argv[1])", "YOLO('yolov8n-mobilenetv2.yaml')"))
    assert out["file"].startswith(str(venv.package / "nn" / "Addmodules")), out
    warnings = [line for line in venv.stderr.splitlines() if ASIDE in line]
    assert len(warnings) == 1 and "bbpatch manifest" in warnings[0]


def test_broken_unwritable_and_contended_caches(make_venv):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")  # fills the cache
    [entry] = list(venv.cache.rglob("*.bin"))
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated: fails its digest
    assert venv.run_json(HOOKED)["loader"] == "PatchedLoader"
    assert cache.decode_entry(entry.read_bytes())["outcome"] == "patch", "the broken entry was rewritten"
    assert venv.run_json(HOOKED) == {"loader": "PatchedLoader", "libcst": False}

    readonly = venv.root.parent / "readonly-cache"
    readonly.mkdir()
    subprocess.run(["chattr", "+i", str(readonly)], check=True)
    try:
        for _ in range(2):
            assert venv.run_json(HOOKED, env={"BBPATCH_CACHE_DIR": str(readonly / "hook")})["loader"] == "PatchedLoader"
        assert not list(readonly.iterdir())
    finally:
        subprocess.run(["chattr", "-i", str(readonly)], check=True)

    contended = venv.root.parent / "contended"
    env = {**venv.env, "BBPATCH_CACHE_DIR": str(contended)}
    processes = [
        subprocess.Popen([str(venv.python), "-c", textwrap.dedent(HOOKED)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in processes]
    assert all(p.returncode == 0 for p in processes) and all(o["loader"] == "PatchedLoader" for o in outputs)
    files = sorted(p.name for p in contended.rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].endswith(".bin"), files
    assert cache.decode_entry(next(contended.rglob("*.bin")).read_bytes())["outcome"] == "patch"


TRACEBACK = """
    import json, traceback
    from ultralytics import YOLO
    try:
        YOLO("yolov8n-mobilenetv4.yaml").model("not a tensor")
    except Exception as error:
        frames = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(error.__traceback__)]
    import ultralytics.nn.tasks as tasks
    code = tasks.parse_model.__code__
    print(json.dumps({"frames": frames, "parse_model": [code.co_filename, code.co_firstlineno]}))
"""


def test_tracebacks_and_line_numbers_point_at_the_real_file(make_venv):
    venv = make_venv("8.4.190")
    venv.bbpatch("enable")
    out = venv.run_json(TRACEBACK)
    tasks = venv.package / "nn" / "tasks.py"
    lines = tasks.read_text().splitlines()
    filename, line = out["parse_model"]
    assert filename == str(tasks) and lines[line - 1].startswith("def parse_model(")
    in_tasks = [(line, name) for file, line, name in out["frames"] if file == str(tasks)]
    assert len(in_tasks) >= 2, out["frames"]  # forward, predict, _predict_once ...
    for line, name in in_tasks:  # the file's own line, inside the function the frame names
        enclosing = next(text for text in reversed(lines[:line]) if text.lstrip().startswith("def "))
        assert enclosing.lstrip().startswith(f"def {name}("), (line, name, enclosing)


def test_line_map_keeps_kept_lines_and_maps_inserted_ones_to_the_line_above(installed_tree):
    original = (installed_tree / "nn" / "tasks.py").read_bytes()
    patched, _ = api.patch_source(api.find_tree(installed_tree), "nn/tasks.py", original)
    lines = compiler.line_map(original.decode(), patched.decode())
    old, new = original.decode().splitlines(), patched.decode().splitlines()
    assert len(new) > len(old)
    kept = [n for n in range(1, len(new) + 1) if new[n - 1].strip() == old[lines[n] - 1].strip()]
    assert len(kept) >= len(old) - 5  # every original line keeps its number (a few blank-line ambiguities aside)
    assert all(lines[a] <= lines[b] for a, b in zip(range(1, len(new)), range(2, len(new) + 1)))
    code = compiler.compile_mapped(original, patched, "tasks.py")
    parse_model = next(c for c in code.co_consts if getattr(c, "co_name", "") == "parse_model")
    assert old[parse_model.co_firstlineno - 1].startswith("def parse_model(")


@pytest.fixture
def installed_tree():
    return Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0])


# --- the decision, in this process (no venv: decide() never imports ultralytics) ---------------------------------


@pytest.fixture
def decide_here(monkeypatch, tmp_path):
    from bbpatch.hook.finder import decide

    monkeypatch.setenv("BBPATCH_CACHE_DIR", str(tmp_path / "hook-cache"))
    return decide


def test_decision_patches_a_stock_tree_with_the_registry_edits(decide_here, fresh_tree):
    decision = decide_here(fresh_tree / "ultralytics")
    assert decision.patched and decision.cache == "written"
    assert decision.edits == api.plan_apply(api.find_tree(fresh_tree))[0].edits  # what apply would record
    assert set(decision.codes) == {"nn/tasks.py", "utils/torch_utils.py"}
    assert "yolov8-mobilenetv4.yaml" in decision.yamls
    assert decide_here(fresh_tree / "ultralytics").cache == "warm"


def test_decision_stands_aside_for_hand_edits_and_a_foreign_addmodules(decide_here, fresh_tree):
    package = fresh_tree / "ultralytics"
    tasks = package / "nn" / "tasks.py"
    loop = 'for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):'
    tasks.write_text(tasks.read_text().replace(loop, loop + "\n        backbone = True", 1))
    decision = decide_here(package)
    assert not decision.patched and "looks patched by hand" in decision.reason and "backbone flag" in decision.reason
    (package / "nn" / "Addmodules").mkdir()
    decision = decide_here(package)
    assert not decision.patched and "by hand, the blog recipe" in decision.reason


def test_decision_stands_aside_for_a_hand_made_branch_for_a_class_bbpatch_ships(decide_here, fresh_tree):
    """Patched in memory, bbpatch's branch would never see MobileNetV4ConvSmall: the user's branch took it first."""
    tasks = fresh_tree / "ultralytics" / "nn" / "tasks.py"
    final = "        else:\n            c2 = ch[f]\n"
    branch = "        elif m in {MobileNetV4ConvSmall}:\n            c2 = args[0]\n"
    tasks.write_text(tasks.read_text().replace(final, branch + final, 1))
    decision = decide_here(fresh_tree / "ultralytics")
    assert not decision.patched and "a branch of its own for MobileNetV4ConvSmall" in decision.reason


def test_the_import_cost_benchmark_runs_and_reports_both_ratios(tmp_path):
    from bbpatch.benchmarks import hook as bench

    figures = bench.measure(tmp_path, rounds=1)  # asserts by itself that the hook is on in its enabled venv
    assert set(bench.TARGETS) <= set(figures) and all(value > 0 for value in figures.values())


def test_a_cache_entry_others_can_write_is_not_run(tmp_path):
    """A shared cache folder must not hand this process anyone's code objects: such an entry is ignored."""
    from bbpatch.hook import cache

    entry = tmp_path / "entry"
    entry.write_bytes(cache.encode_entry("k", {"code": b""}))
    entry.chmod(0o600)
    assert cache.trusted(entry)
    entry.chmod(0o664)
    assert not cache.trusted(entry)


def test_the_code_cache_key_covers_every_module_the_compiled_code_comes_from():
    # a module the compiler uses but the key leaves out would serve stale patched code after a bbpatch upgrade
    from bbpatch import architecture

    graph = architecture.import_graph(WORKTREE)
    used, todo = set(), ["bbpatch.hook.compiler", "bbpatch.hook.finder"]
    while todo:
        for target in graph[todo.pop()] - used:
            used.add(target)
            todo.append(target)
    folders = {folder.resolve() for folder in cache.fingerprint_folders() if folder is not None}
    files = {m: importlib.util.find_spec(m).origin for m in used if m not in ("bbpatch", "bbpatch._moved")}
    uncovered = sorted(m for m, origin in files.items() if Path(origin).resolve().parent not in folders)
    assert not uncovered, f"add their folders to cache.ENGINE_ROOMS: {uncovered}"
    assert {"bbpatch.engine.sources", "bbpatch.engine.edits.base", "bbpatch.models.yaml_bases"} <= set(files)
    before = cache.engine_fingerprint()
    sources = Path(files["bbpatch.engine.sources"])
    stat = sources.stat()
    os.utime(sources, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    try:
        assert cache.engine_fingerprint() != before
    finally:
        os.utime(sources, ns=(stat.st_atime_ns, stat.st_mtime_ns))
