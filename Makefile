# Two entry points for a fresh machine with only Python 3.10+ and pip:
#   make demo  -> create .venv, install uptake, run `usage demo`
#   make test  -> create .venv, install uptake with test extras, run lint, types and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint pytest bench clean compile

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,test]'
	$(MAKE) -s compile
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[server,test,bench]'
	touch $@

# An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set (as in some
# containers) every `usage` run would recompile the sources (~50 ms): compile them once.
compile:
	$(BIN)/python -m compileall -q sdk aggregator cli

demo: $(BIN)/.installed
	$(BIN)/usage demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One pytest worker per core (at most 4; `make test PYTEST_WORKERS=0` runs in this process),
# whole files per worker so that module-scoped servers and datasets start once. Tests must
# stay safe side by side: tmp dirs, free ports, no fixed socket paths.
PYTEST_WORKERS ?= auto

pytest: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile

test: lint pytest

bench: $(BIN)/.bench-installed compile
	$(BIN)/python benchmarks/bench_track.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
