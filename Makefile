# Every target installs what it needs: a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# TFLite (litert-torch pins typing_extensions 4.12, and brings jax and transformers) and CoreML (coremltools needs
# numpy <= 2.3.5) each get a venv of their own that reuses the main one's packages (torch, ultralytics, bbpatch)
# through a .pth file and installs only what it pins differently; pip never touches the main venv from there.
ISOLATED_VENVS := .venv-tflite .venv-coreml
MAIN_SITE = $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: install tflite-venv coreml-venv test demo bench sweep sweep-timm upstream-tests lint clean

install: $(STAMP) $(ISOLATED_VENVS:%=%/.installed)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,export]"
	touch $(STAMP)

tflite-venv: .venv-tflite/.installed
coreml-venv: .venv-coreml/.installed

.venv-%/.installed: $(STAMP)
	$(PYTHON) -m venv --clear .venv-$*
	echo "import site; site.addsitedir('$(MAIN_SITE)')" \
		> "$$(.venv-$*/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/bbpatch-main-venv.pth"
	.venv-$*/bin/python -m pip install -q -e ".[$*]"
	touch $@

# pytest-xdist: one worker a core, at most 4 (each runs its own model builds and exports). worksteal gives each
# worker a contiguous half of the suite (whole modules, but where a steal cuts one) and hands a worker left idle
# the second half of the other's queue, so both end within about one test of each other.
TEST_WORKERS ?= $$($(PY) -c 'import os; print(min(4, os.cpu_count() or 1))')

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

demo: install
	$(PY) -m bbpatch.demo

bench: install
	$(PY) -m bbpatch.benchmarks.engine
	$(PY) -m bbpatch.benchmarks.backbones
	$(PY) -m bbpatch.benchmarks.verify
	$(PY) -m bbpatch.benchmarks.git
	$(PY) -m bbpatch.benchmarks.latency
	$(PY) -m bbpatch.benchmarks.hook

sweep: install
	$(PY) -m bbpatch.releases.sweep

# every timm family as a YOLO and RT-DETR backbone; rows cached in .cache/timm-sweep, the table into docs/backbones.md
SWEEP_TIMM_JOBS ?= 2
sweep-timm: install
	$(PY) -m bbpatch.releases.timm_sweep -j $(SWEEP_TIMM_JOBS) --write-docs

# ultralytics' own tests (from the installed release's sdist) on an unpatched and a patched copy
upstream-tests: install
	$(PY) -m bbpatch.releases.upstream_tests

lint: install
	$(PY) -m pip install -q ruff
	$(PY) -m ruff check patcher modules tests
	$(PY) -m bbpatch.architecture

clean:
	rm -rf $(VENV) $(ISOLATED_VENVS) demo-out .pytest_cache
