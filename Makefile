# `make quickstart` and `make test` create .venv and install itero first, from the lock.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   ?= requirements/cpu.lock
TORCH_VERSION ?= 2.13.0
# Where a CPU-only torch wheel comes from on a machine without a GPU.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
LATEST ?= .venv-latest

.PHONY: install quickstart test lint lock test-latest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The exact versions of the lock (torch first, as the CPU build), then itero itself without touching them.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK) scripts/install_torch.sh
	$(BIN)/python -m pip install --quiet --upgrade pip
	TORCH_VERSION=$(TORCH_VERSION) TORCH_CPU_INDEX=$(TORCH_CPU_INDEX) sh scripts/install_torch.sh $(BIN)/python
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/itero quickstart

test: install
	$(BIN)/python -m pytest tests

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Re-resolve pyproject's ranges and rewrite the lock (commit it once `make test` passes on it).
lock:
	PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) sh scripts/lock.sh $(LOCK)

# The newest versions that pyproject allows (torch stays the pinned CPU build), in their own venv:
# finds drift on purpose, before a `make lock` does. Not run by CI.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	TORCH_VERSION=$(TORCH_VERSION) TORCH_CPU_INDEX=$(TORCH_CPU_INDEX) sh scripts/install_torch.sh $(LATEST)/bin/python
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e '.[dev]' 'torch==$(TORCH_VERSION)'
	$(LATEST)/bin/python -m pip freeze --exclude itero | sed -e 's/+cpu$$//' | diff $(LOCK) - | grep '^[<>] [A-Za-z]' || echo "same versions as $(LOCK)"
	$(LATEST)/bin/python -m pytest tests

bench: install
	$(BIN)/python benchmarks/bench_generation.py

clean:
	rm -rf $(VENV) $(LATEST) runs
