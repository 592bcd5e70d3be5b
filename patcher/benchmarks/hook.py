"""Import-time cost of the import hook (``bbpatch enable``), measured side by side and printed as ratios.

Two venvs layered over this environment (same torch, ultralytics, bbpatch), one enabled; each round runs, in
fresh processes and interleaved, ``python -c "from ultralytics import YOLO"`` in:

- the venv without the hook (the reference);
- the enabled venv with a warm code cache                                 [warm/without <= 1.05]
- the enabled venv with an empty code cache (it patches with libcst)      [cold/without <= 1.5]

Whole-process wall time (interpreter start-up, where the .pth line runs, included), median of the rounds.
The cold figure is paid once per ultralytics release and bbpatch version; every later import is warm.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from bbpatch.benchmarks import print_ratios
from bbpatch.hook import DISABLE_VARIABLE as DISABLE

IMPORT = "from ultralytics import YOLO"
TARGETS = {"warm/without": 1.05, "cold/without": 1.5}


def layered_venv(folder: Path) -> Path:
    """A venv that sees what this Python sees: its site-packages (and the .pth files there) added at start-up."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    here = sysconfig.get_path("purelib")
    Path(site, "00-bbpatch-bench-base.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    return python


def timed(python: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([str(python), "-c", IMPORT], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def measure(scratch: Path, rounds: int) -> dict[str, float]:
    without = layered_venv(scratch / "without")
    hooked = layered_venv(scratch / "hooked")
    env = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False", "PATH": "/usr/bin:/bin", "HOME": str(scratch)}
    env["YOLO_CONFIG_DIR"] = str(scratch / "yolo-config")
    warm = {**env, "BBPATCH_CACHE_DIR": str(scratch / "warm-cache")}
    cold = {**env, "BBPATCH_CACHE_DIR": str(scratch / "cold-cache")}
    subprocess.run([str(hooked), "-m", "bbpatch", "enable"], check=True, env=warm, capture_output=True)
    check = "import ultralytics.nn.tasks as t; print(type(t.__loader__).__name__)"
    loader = subprocess.run([str(hooked), "-c", check], env=warm, capture_output=True, text=True).stdout.strip()
    assert loader == "PatchedLoader", f"the hook is not on in the bench venv ({loader!r})"
    env[DISABLE] = "1"  # the reference: stays stock even where the environment below has the hook on
    for python, run_env in ((without, env), (hooked, warm)):  # untimed: bytecode caches, page cache
        timed(python, run_env)
    samples = {"without": [], "warm": [], "cold": []}
    for n in range(rounds):
        samples["without"].append(timed(without, env))
        samples["warm"].append(timed(hooked, warm))
        samples["cold"].append(timed(hooked, {**cold, "BBPATCH_CACHE_DIR": str(scratch / f"cold-cache-{n}")}))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "warm/without": medians["warm"] / medians["without"],
        "cold/without": medians["cold"] / medians["without"],
        "  import YOLO, s (without the hook, median)": medians["without"],
        "  import YOLO, s (warm cache, median)": medians["warm"],
        "  import YOLO, s (cold cache, median)": medians["cold"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        figures = measure(Path(scratch), args.rounds)
    title = f"import hook benchmarks ({args.rounds} interleaved rounds, whole-process wall time)"
    print_ratios(title, figures, TARGETS)


if __name__ == "__main__":
    main()
