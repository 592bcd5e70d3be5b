"""``bbpatch compare --executor ray``: trials as Ray tasks on a local cluster this module starts (127.0.0.1, 2 CPUs)
and stops, with their folders shipped back to the driver when the study folder is not shared."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from bbpatch.compare import datasets, shipping
from bbpatch.compare.jobs import TrialJob
from bbpatch.compare.ray_executor import KILLED, PROBE, WORKER_LOG, RayExecutor

RAY = Path(sys.executable).with_name("ray")
PORT_OPTIONS = (
    "--port", "--node-manager-port", "--object-manager-port", "--metrics-export-port",
    "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node of its own (ports, temp folder, process group), stopped by killing exactly that group."""
    ports = free_ports(len(PORT_OPTIONS))
    temp = Path(tempfile.mkdtemp(prefix="bbray-", dir="/tmp"))  # short: Ray's socket paths live under it
    command = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
               "--num-gpus", "0", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp)]
    for option, port in zip(PORT_OPTIONS, ports):
        command += [option, str(port)]
    log = open(temp / "head.log", "wb")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_ADDRESS": ""})
    address = f"127.0.0.1:{ports[0]}"
    try:
        wait_for_head(head, address, temp / "head.log")
        yield address
    finally:
        stop_group(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def wait_for_head(head: subprocess.Popen, address: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while b"will now block forever" not in log.read_bytes():
        if head.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start did not come up:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def stop_group(head: subprocess.Popen) -> None:
    """SIGTERM to the head's process group (ray start stops its processes), SIGKILL for what is left."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while group_members(head.pid) and time.monotonic() < deadline:
            head.poll()
            time.sleep(0.5)
    head.wait(10)
    assert not group_members(head.pid), "the Ray cluster's processes outlived it"


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(proc.name))
    return members


# A stand-in trial: what the trial process does to its folder (read the study file, resume from last.pt, write
# results), with the times it ran, so the test sees two of them overlap.
STAND_IN = """
import json, os, sys, time, pathlib
study, trial = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
started = time.time()
recipe = json.loads((study / "study.json").read_text())["recipe"]
resumed = (trial / "last.pt").read_text() if (trial / "last.pt").exists() else None
time.sleep(float(os.environ["SLEEP"]))
(trial / "weights").mkdir(parents=True, exist_ok=True)
(trial / "weights" / "best.pt").write_bytes(os.urandom(1 << 20))
(trial / "ran_in.txt").write_text(os.getcwd())
(trial / "result.json").write_text(json.dumps({"weights": str(trial / "weights" / "best.pt"), "recipe": recipe,
    "resumed": resumed, "started": started,
    "ended": time.time(), "pid": os.getpid(), "threads": os.environ.get("OMP_NUM_THREADS")}))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def stand_in_study(root: Path, trials: list[str], env: dict | None = None) -> list[TrialJob]:
    study = root / "study"
    (study / "trials").mkdir(parents=True, exist_ok=True)
    (study / "study.json").write_text(json.dumps({"recipe": {"epochs": 1, "imgsz": 64}}))
    return [
        TrialJob(trial, (sys.executable, "-c", STAND_IN, str(study), str(study / "trials" / trial)), study,
                 study / "trials" / trial, {"SLEEP": "4", "OMP_NUM_THREADS": "1", **(env or {})})
        for trial in trials
    ]


def run_all(executor, jobs) -> dict[str, int]:
    codes = {}
    executor.run(jobs, lambda job, code: codes.__setitem__(job.trial_id, code))
    return codes


@pytest.mark.parametrize("shared", [None, False], ids=["probed-shared", "shipped"])
def test_two_trials_run_at_once_and_their_folders_come_back(ray_cluster, tmp_path, shared):
    jobs = stand_in_study(tmp_path, ["a.yaml@seed0", "b.yaml@seed0"])
    jobs[1].trial_dir.mkdir()
    (jobs[1].trial_dir / "last.pt").write_text("epoch 3")  # an interrupted trial: its checkpoint must travel
    worker_dir = tmp_path / "worker"

    codes = run_all(RayExecutor(ray_cluster, shared=shared, worker_dir=worker_dir), jobs)

    assert codes == {"a.yaml@seed0": 0, "b.yaml@seed0": 0}
    results = [json.loads((job.trial_dir / "result.json").read_text()) for job in jobs]
    assert [r["resumed"] for r in results] == [None, "epoch 3"]
    assert all(r["recipe"] == {"epochs": 1, "imgsz": 64} and r["threads"] == "1" for r in results)
    first, second = sorted(results, key=lambda r: r["started"])
    assert second["started"] < first["ended"], "the two trials did not run at the same time"
    for job, result in zip(jobs, results):
        ran_in = Path((job.trial_dir / "ran_in.txt").read_text())
        assert (ran_in == job.trial_dir) == (shared is None)
        assert ran_in.is_relative_to(worker_dir) == (shared is False)
        assert not ran_in.exists() or ran_in == job.trial_dir, "the worker's staged copy of the trial was left"
        assert result["weights"] == str(job.trial_dir / "weights" / "best.pt"), "a path not re-rooted"
        assert (job.trial_dir / "weights" / "best.pt").stat().st_size == 1 << 20
        assert (job.trial_dir / WORKER_LOG).exists()
    assert not (jobs[0].study_dir / PROBE).exists()
    assert sorted(p.name for p in (jobs[0].study_dir / "trials").iterdir()) == ["a.yaml@seed0", "b.yaml@seed0"]


def test_a_failing_trial_reports_its_code_and_the_other_goes_on(ray_cluster, tmp_path):
    good, bad = stand_in_study(tmp_path, ["good@seed0", "bad@seed0"], {"SLEEP": "0"})
    bad = TrialJob(bad.trial_id, bad.argv, bad.study_dir, bad.trial_dir, {**bad.env, "EXIT": "3"})

    codes = run_all(RayExecutor(ray_cluster, shared=False, worker_dir=tmp_path / "worker"), [good, bad])

    assert codes == {"good@seed0": 0, "bad@seed0": 3}
    assert (bad.trial_dir / "result.json").exists(), "a failed trial's folder comes back too (its log, its reason)"


def test_an_interrupted_driver_cancels_the_trials_still_running(ray_cluster, tmp_path):
    jobs = stand_in_study(tmp_path, ["quick@seed0", "slow@seed0"])
    quick = TrialJob(jobs[0].trial_id, jobs[0].argv, jobs[0].study_dir, jobs[0].trial_dir, {"SLEEP": "0"})
    slow = TrialJob(jobs[1].trial_id, jobs[1].argv, jobs[1].study_dir, jobs[1].trial_dir, {"SLEEP": "60"})

    def interrupt(job, code):
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        RayExecutor(ray_cluster, shared=True).run([quick, slow], interrupt)
    assert time.monotonic() - started < 60
    time.sleep(3)
    assert not (slow.trial_dir / "result.json").exists(), "the cancelled trial went on running"
    assert not trial_processes(slow.trial_dir), "the cancelled trial's process outlived its Ray worker"


def test_a_killed_driver_takes_its_trials_with_it(ray_cluster, tmp_path):
    (job,) = stand_in_study(tmp_path, ["orphan@seed0"], {"SLEEP": "120"})
    spec = tmp_path / "job.json"  # not on the driver's command line: only the trial's names its folder
    spec.write_text(json.dumps({"argv": job.argv, "env": job.env, "study": str(job.study_dir)}))
    driver = ("import json, sys\nfrom pathlib import Path\nfrom bbpatch.compare.jobs import TrialJob\n"
              "from bbpatch.compare.ray_executor import RayExecutor\n"
              "spec = json.loads(Path(sys.argv[1]).read_text())\n"
              "study = Path(spec['study'])\n"
              "trial = study / 'trials' / 'orphan@seed0'\n"
              "job = TrialJob('orphan@seed0', tuple(spec['argv']), study, trial, spec['env'])\n"
              "RayExecutor(sys.argv[2], shared=True).run([job], lambda job, code: None)")  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", driver, str(spec), ray_cluster])
    deadline = time.monotonic() + 90
    while not trial_processes(job.trial_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert trial_processes(job.trial_dir), "the trial never started"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 30
    while trial_processes(job.trial_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not trial_processes(job.trial_dir), "the trial went on training after its driver was killed"


def trial_processes(trial_dir: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(trial_dir).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_a_dead_worker_reads_as_killed(ray_cluster, tmp_path):
    (job,) = stand_in_study(tmp_path, ["dies@seed0"])
    suicide = (sys.executable, "-c", "import os, signal; os.kill(os.getppid(), signal.SIGKILL)")
    job = TrialJob(job.trial_id, suicide, job.study_dir, job.trial_dir, {})

    codes = run_all(RayExecutor(ray_cluster, shared=True), [job])

    assert codes == {"dies@seed0": KILLED}


# -- real trials: the same study on the local executor and on Ray -----------------------------------------


RECIPE = {"epochs": 1, "imgsz": 64, "batch": 4, "seeds": 1, "runtimes": ["onnxruntime"], "latency_runs": 1}
MODELS = ["yolov8n.yaml", "yolov8n-mobilenetv4.yaml"]  # the second builds only where the patch reached the worker
SAME = ("model", "seed", "status", "map50_95", "map50", "precision", "recall", "params", "gflops")


def test_a_study_on_ray_gives_what_the_local_executor_gives(ray_cluster, patched_tree, tmp_path):
    from bbpatch.compare import compare

    data = datasets.shapes(tmp_path / "shapes")
    local = compare(MODELS, data, tmp_path / "local", recipe=RECIPE, tree=patched_tree, jobs=2)
    executor = RayExecutor(ray_cluster, shared=False, worker_dir=tmp_path / "worker")  # shipped both ways
    on_ray = compare(MODELS, data, tmp_path / "ray", recipe=RECIPE, tree=patched_tree, jobs=2, executor=executor)

    assert [t["status"] for t in on_ray.trials] == ["done", "done"], [t["reason"] for t in on_ray.trials]
    assert [{k: t[k] for k in SAME} for t in on_ray.trials] == [{k: t[k] for k in SAME} for t in local.trials]
    for trial in on_ray.trials:
        assert Path(trial["weights"]).is_relative_to(tmp_path / "ray"), "best.pt not where the driver has it"
        assert Path(trial["weights"]).is_file()
        assert set(trial["latency_ms"]) == {"onnxruntime"}, "the driver could not time what came back"
    assert not any((tmp_path / "worker").rglob("*.pt")), "the worker kept a staged trial"


# -- shipping, without a cluster ------------------------------------------------------------------------------


def test_inputs_hold_the_study_files_and_this_trial_only(tmp_path):
    study = tmp_path / "study"
    for name, text in {"study.json": "{}", ".lock": "", "trials/a/last.pt": "A", "trials/b/last.pt": "B"}.items():
        (study / name).parent.mkdir(parents=True, exist_ok=True)
        (study / name).write_text(text)

    names = tarfile.open(fileobj=io.BytesIO(shipping.pack_inputs(study, study / "trials" / "a"))).getnames()

    assert sorted(names) == ["study.json", "trials/a", "trials/a/last.pt"]


def test_unpack_refuses_a_member_outside_the_folder(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))

    with pytest.raises(ValueError, match="not a plain file inside"):
        shipping.unpack(buffer.getvalue(), tmp_path / "into")
    assert not (tmp_path / "escaped").exists()


def test_install_replaces_the_folder_whole_and_recovers_from_a_kill_between_renames(tmp_path):
    trial = tmp_path / "trials" / "t"
    trial.mkdir(parents=True)
    (trial / "last.pt").write_text("old")
    source = tmp_path / "new"
    source.mkdir()
    (source / "best.pt").write_text("new")

    shipping.install(shipping.pack_folder(source), trial)
    assert sorted(p.name for p in trial.iterdir()) == ["best.pt"]
    assert sorted(p.name for p in trial.parent.iterdir()) == ["t"]

    os.rename(trial, shipping.replaced_dir(trial))  # killed after moving the old folder aside, before the new one
    shipping.recover(trial)
    assert (trial / "best.pt").read_text() == "new"


def test_without_ray_the_executor_is_one_line_naming_the_extra():
    code = "import sys; sys.modules['ray'] = None\nfrom bbpatch.compare.ray_executor import RayExecutor\nRayExecutor()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'bbpatch[ray]'" in result.stderr.strip().splitlines()[-1]


def test_without_ray_the_cli_says_which_extra_in_one_line_and_writes_nothing(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\nfrom bbpatch.cli import main\n"
            f"sys.argv = ['bbpatch', 'compare', 'yolov8n.yaml', '--data', 'x.yaml', '--executor', 'ray', '--out', "
            f"{str(tmp_path / 'study')!r}]\nmain()")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --executor ray needs ray, which is not installed here: "
                                                   "pip install 'bbpatch[ray]'"]
    assert list(tmp_path.iterdir()) == []


def test_install_re_roots_the_paths_a_trial_wrote_under_the_workers_study_folder(tmp_path):
    source = tmp_path / "worker" / "study" / "trials" / "t"
    source.mkdir(parents=True)
    (source / "result.json").write_text(json.dumps({"weights": str(source / "train" / "best.pt")}))
    (source / "notes.txt").write_text(str(source))  # only JSON is the driver's to read: the rest stays as written
    trial = tmp_path / "study" / "trials" / "t"

    shipping.install(shipping.pack_folder(source), trial, (str(tmp_path / "worker" / "study"), str(tmp_path / "study")))

    assert json.loads((trial / "result.json").read_text()) == {"weights": str(trial / "train" / "best.pt")}
    assert (trial / "notes.txt").read_text() == str(source)
