# make run   - the token server on the embedded SQLite default (./paygkit.db), http://127.0.0.1:8000
# make demo  - a token round trip on a simulated device
# make test  - lint, type check and the whole test suite, on the C engine and the fallback
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck pytest bench install clean

$(STAMP): pyproject.toml setup.py src/paygkit/token/_chain.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,server]"
	$(BIN)/python -c "import paygkit.token._chain" || \
		(echo "the C chain extension did not build; is gcc installed?" >&2; exit 1)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/paygkit server run

demo: $(STAMP)
	$(BIN)/paygkit demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	PAYGKIT_REQUIRE_POSTGRES=1 PAYGKIT_REQUIRE_BROWSER=1 PAYGKIT_REQUIRE_C_EXT=1 $(BIN)/pytest -q
	PAYGKIT_REQUIRE_POSTGRES=1 PAYGKIT_REQUIRE_BROWSER=1 PAYGKIT_REQUIRE_C_EXT=1 PAYGKIT_PURE_PYTHON=1 $(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_token.py
	$(BIN)/python benchmarks/bench_server.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/paygkit/token/*.so
