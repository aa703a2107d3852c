# The few targets a newcomer needs. Each one sets up what it uses.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo run test lint format check clean

$(STAMP): pyproject.toml
	@scripts/ensure-system.sh
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Exit code 3 is an expected failure (no key, a busy port), already said in one line:
# demo and run end there, without make's own "Error 3" line after it.
EXPECTED_FAILURE := || [ $$? -eq 3 ]

## demo: everything on a simulated account, no key needed: Redis, worker, beat, Flower, alerts
demo: $(STAMP)
	@$(BIN)/credit-monitor demo $(ARGS) $(EXPECTED_FAILURE)

## run: the same on the real OpenRouter account (needs OPENROUTER_API_KEY, env or .env)
run: $(STAMP)
	@$(BIN)/credit-monitor run $(ARGS) $(EXPECTED_FAILURE)

## test: the whole suite against a private redis-server, the simulator and a real worker
test: $(STAMP)
	$(BIN)/python -m pytest

## bench: history at scale, cost per check, alert latency; a table and bench/results.json
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench.run

## soak: a simulated day (24 h in 30 min) under random faults; a table and bench/soak.json
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(ARGS)

## lint: ruff and mypy, as CI runs them
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint test

clean:
	rm -rf $(VENV) .redis .demo .run .pytest_cache .mypy_cache .ruff_cache *.egg-info
