# Two entry points: `make test` and `make demo`. Each sets up .venv from scratch when needed.
# torch==2.13.0 is installed first and explicitly: pip finds the local CPU wheel, and the package's
# own torch range is then already satisfied (anything else would pull gigabytes of CUDA wheels).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.retain-installed

.PHONY: test demo setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/retain demo

bench: $(STAMP)
	$(PY) bench/eval_speed.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
