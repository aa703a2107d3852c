# The few targets a newcomer needs. Each one sets up what it uses.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test lint format check stop-redis clean

$(STAMP): pyproject.toml
	@scripts/ensure-system.sh
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## run: watch the real OpenRouter account (needs OPENROUTER_API_KEY): a worker with beat
run: $(STAMP)
	@if [ -z "$${OPENROUTER_API_KEY:-}" ] && ! grep -qs '^OPENROUTER_API_KEY=.' .env; then \
	  echo "OPENROUTER_API_KEY is not set: export it or put it in .env" >&2; exit 3; fi
	@REDIS_URL=$$(scripts/ensure-redis.sh) && export REDIS_URL && \
	  $(BIN)/credit-monitor check; $(BIN)/credit-monitor monitor

## test: the whole suite against a private redis-server, the simulator and a real worker
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff and mypy, as CI runs them
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint test

stop-redis:
	@-redis-cli -p 6399 shutdown nosave 2>/dev/null; true

clean: stop-redis
	rm -rf $(VENV) .redis .pytest_cache .mypy_cache .ruff_cache *.egg-info
