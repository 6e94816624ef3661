# Set-up and the two everyday commands. Each target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned here, in the same pip command: a loose spec pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
OUT    ?= runs/quickstart

.PHONY: setup quickstart test test-all test-slow lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt tests/oracles/requirements-colbert-ai.txt tests/oracles/requirements-pylate.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)" -c constraints.txt -e ".[cpu,dev]"
	@# DeepSpeed JIT-builds its CPU communication op on first use (~35 s); build it once here.
	$(BIN)/python -c "from deepspeed.accelerator import get_accelerator as g; g().create_op_builder('ShareMemCommBuilder').load()" >/dev/null 2>&1 || true
	@# The stock ColBERT libraries the format tests compare with pin older transformers: each goes
	@# into its own folder, put on the path only in the test's subprocess (tests/oracles/).
	$(BIN)/pip install -q --no-deps --target $(VENV)/oracles/colbert-ai -r tests/oracles/requirements-colbert-ai.txt
	$(BIN)/pip install -q --no-deps --target $(VENV)/oracles/pylate -r tests/oracles/requirements-pylate.txt
	touch $@

quickstart: setup
	$(BIN)/lead quickstart --out $(OUT)

test: setup             ## the fast suite (slow and gpu tests left out), under 5 min on 2 cores
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: setup         ## everything but the gpu tests
	$(BIN)/python -m pytest -q -m "not gpu" --durations=25

test-slow: setup        ## only the slow tests (what `test` leaves out), as CI runs them after it
	$(BIN)/python -m pytest -q -m "slow and not gpu" --durations=25

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs
