"""bbpatch compare on a dataset a model learns in a few CPU epochs: every row is ultralytics' own val of the
trial's best.pt, training raises mAP, the outputs agree, claims follow the spread rule, a study killed while
training, exporting and timing finishes with --resume (finished trials untouched and bit for bit the same, the
interrupted one resumed from its last.pt), and bad input is one line."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shapes_data import write_shapes

from bbpatch.compare import tables
from bbpatch.compare.candidates import CHECKPOINT, IMAGENET, SCRATCH, resolve
from bbpatch.compare.driver import new_study
from bbpatch.compare.study import Study, StudyError

from helpers import CONFIG_ROOT, ISOLATED_ENV, run_py

EPOCHS = 6
# AdamW at a high rate, no warm-up, mosaic or scale/translate jitter: 64 px shapes found after a few dozen steps
RECIPE = ["--epochs", str(EPOCHS), "--imgsz", "64", "--batch", "4", "--seeds", "2", "--latency-runs", "5",
          "--train", "workers=0", "--train", "warmup_epochs=0", "--train", "optimizer=AdamW", "--train", "lr0=0.01",
          "--train", "mosaic=0", "--train", "scale=0", "--train", "translate=0", "--train", "amp=False"]  # fmt: skip
CANDIDATES = ["yolov8n.yaml", "yolov8n-mobilenetv4.yaml"]
BROKEN = "backbone:\n  - [-1, 1, NoSuchModule, []]\nhead:\n  - [-1, 1, Detect, [nc]]\nnc: 2\n"


def env_for(tree: Path) -> dict:
    config = Path(os.environ.get(CONFIG_ROOT, "/tmp"), "compare-settings")
    return {**os.environ, **ISOLATED_ENV, "YOLO_CONFIG_DIR": str(config)}


def compare_cli(tree: Path, *args: str, cwd: Path, wait=True):
    command = [sys.executable, "-m", "bbpatch", "compare", "--tree", str(tree), *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=env_for(tree), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=env_for(tree), capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def study(patched_tree, data, tmp_path_factory) -> dict:
    """Two candidates x two seeds, and a third candidate that does not build."""
    folder = tmp_path_factory.mktemp("study")
    broken = folder / "broken.yaml"
    broken.write_text(BROKEN)
    out = folder / "out"
    done = compare_cli(patched_tree, *CANDIDATES, str(broken), "--data", str(data), *RECIPE, "--out", str(out),
                       cwd=folder)  # fmt: skip
    assert done.returncode == 1, done.stderr[-4000:]  # a trial failed: the broken candidate's
    return {"out": out, "json": json.loads((out / "compare.json").read_text()), "stderr": done.stderr,
            "stdout": done.stdout}  # fmt: skip


INDEPENDENT = r"""
import json, sys, torch
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel
data, imgsz, batch, weights, untrained, folder = json.loads(sys.argv[1])
out = {}
for w in weights:
    r = YOLO(w).val(data=data, imgsz=imgsz, batch=batch, plots=False, project=folder, name="val", exist_ok=True)
    out[w] = [r.box.map, r.box.map50, r.box.mp, r.box.mr]
for name in untrained:  # the same model before training: built with the data's two classes, never trained
    torch.manual_seed(0)
    path = f"{folder}/{name}.pt"
    torch.save({"model": DetectionModel(name, nc=2, verbose=False)}, path)
    r = YOLO(path).val(data=data, imgsz=imgsz, batch=batch, plots=False, project=folder, name="val0", exist_ok=True)
    out[name] = [r.box.map, r.box.map50, r.box.mp, r.box.mr]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def independent(patched_tree, study, data, tmp_path_factory) -> dict:
    """ultralytics' own val of every trial's best.pt in a process of its own, and of the untrained models."""
    weights = [t["weights"] for t in study["json"]["trials"] if t["status"] == "done"]
    folder = tmp_path_factory.mktemp("independent")
    args = json.dumps([str(data), 64, 4, weights, CANDIDATES, str(folder)])
    threads = str(os.cpu_count())  # as the trials had: one job, every CPU (float sums in the same order)
    stdout = run_py(patched_tree, INDEPENDENT.replace("sys.argv[1]", repr(args)), env={"OMP_NUM_THREADS": threads})
    return json.loads(stdout.strip().splitlines()[-1])


def test_every_row_is_ultralytics_own_val_of_the_trials_best_pt(study, independent):
    trials = [t for t in study["json"]["trials"] if t["status"] == "done"]
    assert sorted(t["trial"] for t in trials) == sorted(f"{c}@seed{s}" for c in CANDIDATES for s in (0, 1))
    for t in trials:
        assert Path(t["weights"]).name == "best.pt" and Path(t["weights"]).is_file()
        assert [t["map50_95"], t["map50"], t["precision"], t["recall"]] == independent[t["weights"]], t["trial"]


def test_training_raises_map_above_the_untrained_model(study, independent):
    for t in (t for t in study["json"]["trials"] if t["status"] == "done"):
        untrained = independent[t["model"]]
        assert t["map50_95"] > untrained[0] and t["map50"] > untrained[1], (t["trial"], t["map50_95"], untrained)


def test_a_candidate_that_does_not_build_is_a_row_with_its_reason(study):
    broken = [t for t in study["json"]["trials"] if t["model"] == "broken.yaml"]
    assert [t["status"] for t in broken] == ["failed", "failed"]
    assert all("NoSuchModule" in t["reason"] for t in broken), broken
    row = next(line for line in (study["out"] / "compare.md").read_text().splitlines() if "| broken.yaml" in line)
    assert "failed: broken.yaml@seed0: " in row and "NoSuchModule" in row
    assert "broken.yaml@seed0: failed" in study["stderr"]


def markdown_rows(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])}  # fmt: skip


def test_json_csv_markdown_and_plot_agree(study):
    out, data = study["out"], study["json"]
    rows = {r["model"]: r for r in data["candidates"]}
    trials = {t["trial"]: t for t in data["trials"]}
    with open(out / "compare.csv", newline="") as f:
        table = list(csv.DictReader(f))
    for line in table:
        if line["kind"] == "trial":
            t = trials[line["trial"]]
            assert line["status"] == t["status"] and line["weights"] == (t["weights"] or "")
            if t["status"] == "done":
                assert float(line["map50_95"]) == t["map50_95"] and int(line["params"]) == t["params"]
                for runtime, ms in t["latency_ms"].items():
                    assert float(line[f"latency_ms_{runtime}"]) == ms
        else:
            r = rows[line["model"]]
            assert (float(line["map50_95"]) if line["map50_95"] else None) == r["map50_95"]
    assert {line["trial"] for line in table if line["kind"] == "trial"} == set(trials)
    md = markdown_rows((out / "compare.md").read_text())
    for name in CANDIDATES:
        r, cells = rows[name], md[name]
        done = [t for t in trials.values() if t["model"] == name and t["status"] == "done"]
        assert r["map50_95"] == pytest.approx(sum(t["map50_95"] for t in done) / 2)
        assert r["map50_95_min"] == min(t["map50_95"] for t in done)
        spread = f"{r['map50_95_min']:.3f}-{r['map50_95_max']:.3f}"
        assert cells["mAP50-95 mean (range)"] == f"{r['map50_95']:.3f} ({spread}, 2 seeds)"
        assert cells["ORT ms"] == f"{r['latency_ms']['onnxruntime']:.1f}"
        assert cells["OpenVINO f32 ms"] == f"{r['latency_ms']['openvino']:.1f}"
        assert cells["params (M)"] == f"{r['params'] / 1e6:.2f}"
        assert set(r["latency_ms"]) == {"onnxruntime", "openvino"} and all(ms > 0 for ms in r["latency_ms"].values())
        for panel in data["plot"]:
            point = next(p for p in panel["points"] if p[0] == name)
            assert point[1:] == [r["latency_ms"][panel["runtime"]], r["map50_95"]]
            assert (name in panel["front"]) == (panel["runtime"] in r["pareto"])
    png = (out / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_summary_claims_follow_the_spread_rule(study):
    data = study["json"]
    rows = {r["model"]: r for r in data["candidates"]}
    a, b = sorted(CANDIDATES, key=lambda n: -rows[n]["map50_95"])
    ra, rb = rows[a], rows[b]
    claim = next(c for c in data["claims"] if a in c and b in c)
    spread = max(ra["map50_95_max"] - ra["map50_95_min"], rb["map50_95_max"] - rb["map50_95_min"])
    if ra["map50_95"] - rb["map50_95"] > spread:
        assert claim.startswith(f"{a} beats {b}")
    else:
        assert claim.startswith(f"{a} vs {b}: within noise")
    assert f"- {claim}" in (study["out"] / "compare.md").read_text()


def row(name, maps, start=SCRATCH, ms=1.0):
    r = tables.Row(name, start, len(maps), len(maps), latency_ms={"onnxruntime": ms})
    if maps:
        r.map50_95, r.map50_95_min, r.map50_95_max = sum(maps) / len(maps), min(maps), max(maps)
    return r


def test_beats_only_where_the_difference_is_larger_than_the_spreads():
    assert tables.verdict(row("a", [0.50, 0.52]), row("b", [0.40, 0.42])) == "beats"  # 0.10 over spreads of 0.02
    assert tables.verdict(row("b", [0.40, 0.42]), row("a", [0.50, 0.52])) == "loses"
    assert tables.verdict(row("a", [0.50, 0.52]), row("b", [0.45, 0.52])) == "within noise"
    assert tables.verdict(row("a", [0.50, 0.52]), row("b", [0.30, 0.49])) == "within noise"  # 0.115 < spread 0.19
    assert tables.verdict(row("a", [0.50, 0.50]), row("b", [0.25, 0.50])) == "within noise"  # 0.125 < spread 0.25
    assert tables.verdict(row("a", [0.9]), row("b", [0.1, 0.2])) == "no spread known"
    lines = tables.claims([row("a", [0.3]), row("b", [0.1])])
    assert len(lines) == 1 and "no spread is known" in lines[0]
    lines = tables.claims([row("b", [0.45, 0.52]), row("a", [0.50, 0.52]), row("c", [0.1, 0.11])])
    assert lines[0].startswith("a vs b: within noise") and "a beats c" in lines[1] and "b beats c" in lines[2]


def test_pareto_front_and_the_initialisation_warning():
    rows = [row("fast", [0.2, 0.2], ms=1), row("good", [0.5, 0.5], ms=3), row("worse", [0.3, 0.3], ms=4)]
    tables.mark_pareto(rows, ["onnxruntime"])
    assert [r.pareto for r in rows] == [["onnxruntime"], ["onnxruntime"], []]
    assert tables.warnings(rows) == []
    rows[1].start = IMAGENET
    (warning,) = tables.warnings(rows)
    assert "different initialisations" in warning and "ImageNet backbone: good" in warning


def test_candidates_by_name_file_and_checkpoint_say_how_they_start(patched_tree, tmp_path):
    from bbpatch.verify import target

    shipped = {p.name: p for p in target.load(patched_tree).yamls()}
    stock = patched_tree / "ultralytics" / "cfg" / "models"
    pretrained = tmp_path / "yolov8n-pretrained.yaml"
    pretrained.write_text(shipped["yolov8-mobilenetv4.yaml"].read_text().replace(
        "MobileNetV4ConvSmall_050, []", "MobileNetV4ConvSmall_050, [True]"))  # fmt: skip
    weights = tmp_path / "coco.pt"
    weights.write_bytes(b"")
    found = resolve(["yolov8n.yaml", "yolov8n-mobilenetv4.yaml", str(pretrained), str(weights)], ["yolo26n"],
                    shipped, stock)  # fmt: skip
    starts = {c.name: c.start for c in found}
    assert starts["yolov8n.yaml"] == starts["yolov8n-mobilenetv4.yaml"] == SCRATCH
    assert starts["yolov8n-pretrained.yaml"] == IMAGENET and starts["coco.pt"] == CHECKPOINT
    assert "yolo26n.yaml" in starts and "yolo26n-mobilenetv4.yaml" in starts and len(found) > 8
    with pytest.raises(StudyError, match="yolov8n-nosuch.yaml: not a file, nor a YAML bbpatch shipped"):
        resolve(["yolov8n-nosuch.yaml"], [], shipped, stock)


# ---------------------------------------------------------------- killed and resumed


def wait_for(condition, process, what: str, timeout=900):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the study ended before {what}: {process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.05)


def kill(process):
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def progress(out: Path, trial: str) -> dict:
    try:
        return json.loads((out / "trials" / trial / "progress.json").read_text())
    except (OSError, ValueError):
        return {}


def train_losses(trial: Path) -> list:
    with open(trial / "train" / "results.csv", newline="") as f:
        return [[row[k] for k in row if k.startswith("train/")] for row in csv.DictReader(f)]


def mtimes(folder: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_killed_while_training_exporting_and_timing_resume_finishes_it(patched_tree, data, study, tmp_path):
    out = tmp_path / "killed"
    first, second = "yolov8n.yaml@seed0", "yolov8n.yaml@seed1"
    args = ["yolov8n.yaml", "--data", str(data), *RECIPE, "--out", str(out)]
    running = compare_cli(patched_tree, *args, cwd=tmp_path, wait=False)
    wait_for(lambda: progress(out, second).get("epoch", 0) >= 2, running, "second trial's epoch 2")
    kill(running)
    finished = mtimes(out / "trials" / first)
    assert json.loads((out / "trials" / first / "result.json").read_text())["status"] == "done"
    assert not (out / "trials" / second / "result.json").exists()

    running = compare_cli(patched_tree, "--resume", str(out), cwd=tmp_path, wait=False)
    wait_for(lambda: progress(out, second).get("phase") == "export", running, "the export")
    kill(running)
    assert not (out / "trials" / second / "exports.json").exists()

    running = compare_cli(patched_tree, "--resume", str(out), cwd=tmp_path, wait=False)
    timing_log = out / "timing" / "time.log"  # opened as the timing process starts
    wait_for(lambda: timing_log.exists() and Study.load(out).timing == "running", running, "the timing process")
    kill(running)
    assert not (out / "timing.json").exists() and not (out / "compare.json").exists()

    done = compare_cli(patched_tree, "--resume", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "trial(s) to run" not in done.stderr and "timing 2 trial(s)" in done.stderr  # nothing trained again
    assert mtimes(out / "trials" / first) == finished  # the finished trial untouched
    trained = json.loads((out / "trials" / second / "trained.json").read_text())
    assert trained["resumed_from_epoch"] >= 2  # from its last.pt, by ultralytics' resume
    with open(out / "trials" / second / "train" / "results.csv", newline="") as f:  # one line an epoch, none twice
        assert [int(float(r["epoch"])) for r in csv.DictReader(f)] == list(range(1, EPOCHS + 1))
    resumed = {t["trial"]: t for t in json.loads((out / "compare.json").read_text())["trials"]}
    uninterrupted = {t["trial"]: t for t in study["json"]["trials"]}
    keys = ("status", "map50_95", "map50", "precision", "recall", "params", "gflops")
    assert {k: resumed[first][k] for k in keys} == {k: uninterrupted[first][k] for k in keys}  # bit for bit
    # ultralytics' resume restarts from last.pt's float16 EMA and optimizer, with fresh random states: the epochs
    # before the kill are the uninterrupted run's, the later ones its own; its row is still ultralytics' val of it
    losses = [train_losses(folder / "trials" / second) for folder in (out, study["out"])]
    assert losses[0][:2] == losses[1][:2]
    assert {k: resumed[second][k] for k in ("status", "params", "gflops")} == {
        k: uninterrupted[second][k] for k in ("status", "params", "gflops")}  # fmt: skip
    args = json.dumps([str(data), 64, 4, [resumed[second]["weights"]], [], str(tmp_path / "val")])
    stdout = run_py(patched_tree, INDEPENDENT.replace("sys.argv[1]", repr(args)),
                    env={"OMP_NUM_THREADS": str(os.cpu_count())})  # fmt: skip
    own = json.loads(stdout.strip().splitlines()[-1])[resumed[second]["weights"]]
    assert [resumed[second][k] for k in ("map50_95", "map50", "precision", "recall")] == own
    assert f"{second} after epoch {trained['resumed_from_epoch']}" in (out / "compare.md").read_text()
    assert set(resumed[second]["latency_ms"]) == {"onnxruntime", "openvino"}


# ---------------------------------------------------------------- bad input: one line, nothing changed


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_bad_input_is_one_line_and_writes_nothing(patched_tree, data, tmp_path):
    out = tmp_path / "out"
    no_val = tmp_path / "noval.yaml"
    no_val.write_text(f"path: {data.parent}\ntrain: images/train\nnames:\n  0: a\n")
    cases = {
        "no such data YAML": ["yolov8n.yaml", "--data", str(tmp_path / "missing.yaml")],
        "no 'val' split": ["yolov8n.yaml", "--data", str(no_val)],
        "yolov8n-nosuch.yaml: not a file": ["yolov8n-nosuch.yaml", "--data", str(data)],
        "--data DATA.yaml is required": ["yolov8n.yaml"],
        "--train epochs=...: the study sets epochs": ["yolov8n.yaml", "--data", str(data), "--train", "epochs=3"],
        "--runtimes torch: not an exported runtime": ["yolov8n.yaml", "--data", str(data), "--runtimes", "torch"],
    }
    for expected, args in cases.items():
        line = one_line_error(compare_cli(patched_tree, *args, "--out", str(out), cwd=tmp_path))
        assert expected in line, line
        assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(compare_cli(patched_tree, "--resume", str(empty), cwd=tmp_path))
    assert "not a study folder" in line and not any(empty.iterdir())


def test_resume_refuses_another_recipe_or_changed_data(patched_tree, tmp_path, monkeypatch):
    small = write_shapes(tmp_path / "small", train=4, val=2)
    recipe = {"epochs": 2, "imgsz": 64, "batch": 2, "seeds": 1, "train": {}, "runtimes": ("onnxruntime",),
              "latency_runs": 3}  # fmt: skip
    study = new_study(["yolov8n.yaml"], small, tmp_path / "s", recipe, tree=patched_tree)
    before = study.file.read_bytes()
    assert Study.load(study.folder).trials["yolov8n.yaml@seed0"]["state"] == "pending"
    line = one_line_error(compare_cli(patched_tree, "--resume", str(study.folder), "--epochs", "3", cwd=tmp_path))
    assert "--epochs 3 is not the study's (2)" in line
    line = one_line_error(compare_cli(patched_tree, "--resume", str(study.folder), "yolov8s.yaml", cwd=tmp_path))
    assert "yolov8s.yaml is not a candidate of this study" in line
    label = small.parent / "labels" / "val" / "0.txt"
    label.write_text(label.read_text().replace("0.", "0.0", 1))
    line = one_line_error(compare_cli(patched_tree, "--resume", str(study.folder), cwd=tmp_path))
    assert "the data changed since the study started (val)" in line
    again = one_line_error(compare_cli(patched_tree, "yolov8n.yaml", "--data", str(small), "--out",
                                       str(study.folder), cwd=tmp_path))  # fmt: skip
    assert "a study is there already" in again
    assert study.file.read_bytes() == before and sorted(p.name for p in study.folder.iterdir()) == ["study.json"]


# ---------------------------------------------------------------- the local executor


STEP = r"""
import json, os, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
(folder / "started").write_text(json.dumps([time.time(), os.environ.get("CUDA_VISIBLE_DEVICES")]))
time.sleep(0.6)
(folder / "ended").write_text(str(time.time()))
sys.exit(int(sys.argv[2]))
"""


def test_local_executor_runs_n_at_once_each_with_a_gpu_of_its_own(tmp_path):
    from bbpatch.compare.jobs import TrialJob
    from bbpatch.compare.local import LocalExecutor

    jobs = []
    for i in range(5):
        folder = tmp_path / f"t{i}"
        argv = (sys.executable, "-c", STEP, str(folder), "3" if i == 2 else "0")
        jobs.append(TrialJob(f"t{i}", argv, tmp_path, folder, {"MY_VARIABLE": str(i)}, 1, 1))
    ended = {}
    LocalExecutor(jobs=2, devices=("0", "1")).run(jobs, lambda job, code: ended.setdefault(job.trial_id, code))
    assert ended == {"t0": 0, "t1": 0, "t2": 3, "t3": 0, "t4": 0}
    spans = []
    for job in jobs:
        start, device = json.loads((job.trial_dir / "started").read_text())
        spans.append((start, float((job.trial_dir / "ended").read_text()), device))
    assert {d for _, _, d in spans} == {"0", "1"}
    for a, b in itertools.combinations(spans, 2):  # two at once at most, and never on one GPU
        if a[0] < b[1] and b[0] < a[1]:
            assert a[2] != b[2]
    assert max(sum(s < t[0] + 1e-3 < e for s, e, _ in spans) for t in spans) <= 2


def test_the_driver_never_imports_torch_or_ultralytics(patched_tree, tmp_path):
    small = write_shapes(tmp_path / "small", train=2, val=2)
    code = (
        "import sys\nfrom bbpatch.cli import main\n"
        f"try:\n    main(['compare', 'yolov8n.yaml', 'yolov8n-mobilenetv4.yaml', '--data', r'{small}', '--tree', "
        f"r'{patched_tree}', '--runtimes', 'nosuch', '--out', r'{tmp_path / 'a'}'])\nexcept SystemExit:\n    pass\n"
        "from bbpatch.compare.driver import new_study, open_study\n"
        f"study = new_study(['yolov8n-mobilenetv4.yaml'], r'{small}', r'{tmp_path / 'b'}', dict(epochs=1, imgsz=64, "
        f"batch=2, seeds=1, train={{}}, runtimes=('onnxruntime',), latency_runs=1), tree=r'{patched_tree}')\n"
        "open_study(study.folder)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'ultralytics'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_for(patched_tree))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--runtimes nosuch: not an exported runtime" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
