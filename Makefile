# Set-up and entry points. Every target creates the virtual environment on first use:
# torch 2.13.0 (CPU build) first, then the package with its test extra.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.latentbridge-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(BIN)/python -m pip list 2>/dev/null | grep -iE '^(torch|nvidia)' ; true
	touch $@

demo: $(STAMP)
	$(BIN)/latentbridge quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
