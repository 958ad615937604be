# Two commands on a fresh machine: `make lab` (the workbench in JupyterLab, CPU default) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

# constraints.txt: the versions the tests last passed with (scripts/freeze_constraints.py writes it).
# silero-vad only for its ONNX files (the real-model tests): --no-deps, its requirements pull torch.
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[cpu,dev]'
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt silero-vad
	touch $@

.PHONY: install lab test lint bench
install: $(BIN)/.installed

lab: $(BIN)/.installed
	$(BIN)/workbench lab

lint: $(BIN)/.installed
	$(BIN)/ruff check workbench tests benchmarks scripts

# The suite's files spread over TEST_WORKERS processes (pytest-xdist), one file to one process, so a module's
# shared fixture (one Ray cluster) is started once. The browser tests and the tests marked `alone` follow in one
# process: the speed-ups they judge (the quickstart's INT8, an engine's gap) are measured with no other test on
# the cores.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not browser and not alone"
	$(BIN)/pytest -q -m "browser or alone"

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/precision_table.py
