# Two commands: `make quickstart` and `make test`. Both create .venv and install itero first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# Where a CPU-only torch wheel comes from on a machine without a GPU.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install quickstart test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml scripts/install_torch.sh
	$(BIN)/python -m pip install --quiet --upgrade pip
	TORCH_VERSION=$(TORCH_VERSION) TORCH_CPU_INDEX=$(TORCH_CPU_INDEX) sh scripts/install_torch.sh $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/itero quickstart

test: install
	$(BIN)/python -m pytest tests

bench: install
	$(BIN)/python benchmarks/bench_generation.py

clean:
	rm -rf $(VENV) runs
