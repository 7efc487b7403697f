# One-command setup: every target creates .venv and installs dirsearch into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dirsearch train search_spaces/synthetic.yaml --out runs/synthetic-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The quick benchmarks (about a minute); bench/dir_effect.py takes ~30 min and is run on its own.
bench: $(STAMP)
	$(BIN)/python bench/fds_bench.py
	$(BIN)/python bench/decode_cache.py
