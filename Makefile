# Baygate: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test run bench lint chaos clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/baygate demo

run: $(STAMP)
	$(BIN)/baygate serve

# The long scenarios (marked slow) run in `make chaos`; their quick variants run here.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy adapters clearing gateway

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Crash and outage scenarios (figures in bench/chaos.json), then the long hostile-input,
# concurrency and schemathesis runs.
chaos: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow tests/chaos tests/reliability

clean:
	rm -rf $(VENV) .baygate
