# Set-up, demo and tests. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_run
DEMO_MINUTES ?= 3

.PHONY: setup demo test lint bench clean bids-validator

setup: $(VENV)/.installed

# torch is pinned to the local 2.13.0 CPU build unless one is already in the venv:
# an unpinned torch would pull several GB of CUDA wheels.
# clinica is installed without its ~100 dependencies: neurotrans only reads the atlas
# and reference-mask files shipped inside its wheel.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps clinica==0.12.0
	touch $@

demo: setup
	$(VENV)/bin/neurotrans demo --out $(DEMO_OUT) --minutes $(DEMO_MINUTES) --overwrite

test: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n 2

# the BIDS validator (schema-based, run by deno; both npm packages, offline once installed) under the
# git-ignored .tools/: tests/safety/test_safety_bids.py uses it when present
bids-validator:
	npm install --prefix .tools/bids-validator --no-audit --no-fund bids-validator@1.15.0 deno@2.9.6

bench: setup
	$(PY) benchmarks/data_loading.py
	$(PY) benchmarks/train_2d.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)
