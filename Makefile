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
	$(BIN)/dirsearch run search_spaces/demo.yaml

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The quick benchmarks (about a minute); bench/dir_effect.py (~30 min) and bench/sweep_bench.py
# (minutes per experiment) are run on their own.
bench: $(STAMP)
	$(BIN)/python bench/fds_bench.py
	$(BIN)/python bench/decode_cache.py
