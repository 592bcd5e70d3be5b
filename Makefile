# Every target installs what it needs: a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench sweep upstream-tests lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) -m bbpatch.demo

bench: install
	$(PY) -m bbpatch.benchmarks.engine
	$(PY) -m bbpatch.benchmarks.backbones
	$(PY) -m bbpatch.benchmarks.verify
	$(PY) -m bbpatch.benchmarks.git

sweep: install
	$(PY) -m bbpatch.sweep

# ultralytics' own tests (from the installed release's sdist) on an unpatched and a patched copy
upstream-tests: install
	$(PY) -m bbpatch.upstream_tests

lint: install
	$(PY) -m pip install -q ruff
	$(PY) -m ruff check patcher modules tests

clean:
	rm -rf $(VENV) demo-out .pytest_cache
