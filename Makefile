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

.PHONY: install tflite-venv coreml-venv test demo bench sweep sweep-adopt sweep-timm upstream-tests lint clean

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
	$(PY) -m bbpatch.compare.bench

sweep: install
	$(PY) -m bbpatch.releases.sweep

# bbpatch adopt on the public recipe trees of patcher/releases/adopt_corpus.json (archives in .cache/adopt-corpus),
# every tree's YAMLs built before and after in a venv of the sweep's own: the main venv's packages through a .pth,
# plus the extra packages the trees' modules import. SWEEP_ADOPT_ARGS: e.g. -j 2, --max-yamls 6, tree names.
SWEEP_ADOPT_VENV := .cache/adopt-sweep-venv
SWEEP_ADOPT_EXTRAS := einops dill mmcv-lite mmengine PyWavelets easydict thop torchsummary
SWEEP_ADOPT_ARGS ?=

SWEEP_ADOPT_PTH = "$$($(SWEEP_ADOPT_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/bbpatch-main-venv.pth"

# the .pth goes in before pip, so the extras' own requirements are met by the main venv's packages
$(SWEEP_ADOPT_VENV)/.installed: $(STAMP)
	$(PYTHON) -m venv --clear $(SWEEP_ADOPT_VENV)
	echo "import site; site.addsitedir('$(MAIN_SITE)')" > $(SWEEP_ADOPT_PTH)
	$(SWEEP_ADOPT_VENV)/bin/python -m pip install -q $(SWEEP_ADOPT_EXTRAS)
	touch $@

# the .pth is written again on every run: the cache is shared between checkouts, each with its own main venv
sweep-adopt: install $(SWEEP_ADOPT_VENV)/.installed
	echo "import site; site.addsitedir('$(MAIN_SITE)')" > $(SWEEP_ADOPT_PTH)
	$(PY) -m bbpatch.releases.adopt_sweep --python $(SWEEP_ADOPT_VENV)/bin/python --write-docs $(SWEEP_ADOPT_ARGS)
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
