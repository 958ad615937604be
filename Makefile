# Two commands on a fresh machine: `make lab` (the workbench in JupyterLab, CPU default) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev]'
	touch $@

.PHONY: install lab test lint bench
install: $(BIN)/.installed

lab: $(BIN)/.installed
	$(BIN)/workbench lab

lint: $(BIN)/.installed
	$(BIN)/ruff check workbench tests benchmarks scripts

test: lint
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/precision_table.py
