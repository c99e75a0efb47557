# make run   - the token server on the embedded SQLite default (./paygkit.db), http://127.0.0.1:8000
# make demo  - a token round trip on a simulated device
# make test  - lint, type check and the whole test suite, on the C engine and the fallback
# make bench - the benchmarks (token, server, command line), every figure against its target
#              (exit 0 unless an answer is wrong); make bench-check also fails on a missed target
# make firmware, make firmware-size - the device library's firmware for the emulated
#              Cortex-M0 board, and its flash and RAM
# The system packages these need (gcc, python3-venv, python3-dev; for make test also
# postgresql, chromium, curl and the firmware's gcc-arm-none-eabi, libnewlib-arm-none-eabi and
# qemu-system-arm) come from scripts/system-deps: installed when missing if run as root, else
# make stops at once with the apt-get command to run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck pytest bench bench-check install clean firmware firmware-size \
	firmware-certify

$(STAMP): pyproject.toml setup.py MANIFEST.in src/paygkit/token/_chain.c src/paygkit/device/_cfirmware.c \
	$(wildcard firmware/lib/*.c firmware/lib/*.h)
	PYTHON=$(PYTHON) bash scripts/system-deps build
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,server]"
	$(BIN)/python -c "import paygkit.token._chain, paygkit.device._cfirmware" || \
		(echo "the C extensions (chain loop, device library) did not build; is gcc installed?" >&2; exit 1)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/paygkit server run

demo: $(STAMP)
	$(BIN)/paygkit demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	PAYGKIT_REQUIRE_POSTGRES=1 PAYGKIT_REQUIRE_BROWSER=1 PAYGKIT_REQUIRE_C_EXT=1 PAYGKIT_REQUIRE_FIRMWARE=1 $(BIN)/pytest -q
	PAYGKIT_REQUIRE_POSTGRES=1 PAYGKIT_REQUIRE_BROWSER=1 PAYGKIT_REQUIRE_C_EXT=1 PAYGKIT_REQUIRE_FIRMWARE=1 PAYGKIT_PURE_PYTHON=1 $(BIN)/pytest -q

test:
	PYTHON=$(PYTHON) bash scripts/system-deps test
	$(MAKE) --no-print-directory lint typecheck pytest

# Both benchmarks run whatever the first one finds; the exit status is the worse of the two
# (2: a wrong answer; 1: a missed target, with --fail-on-targets only).
bench: $(STAMP)
	status=0; for name in token server cli; do \
		$(BIN)/python benchmarks/bench_$$name.py $(BENCH_FLAGS) || \
			{ s=$$?; [ $$s -le $$status ] || status=$$s; }; \
	done; exit $$status

# The device library's firmware for the emulated Cortex-M0 board (firmware/Makefile).
firmware:
	bash scripts/system-deps firmware
	$(MAKE) -C firmware

# The example firmware as a whole, then per module and build of the library (firmware/size
# probes) and the budgets: the last line is the budgeted product build's (the library with its
# protocol) flash_bytes=N ram_bytes=M.
firmware-size: firmware
	$(MAKE) --no-print-directory -C firmware example-size library-size PYTHON=$(PYTHON)

# The example firmware in QEMU, set up by `paygkit factory flash` and checked by `paygkit certify`.
firmware-certify: $(STAMP)
	bash scripts/system-deps firmware
	$(BIN)/python scripts/firmware_certify.py

bench-check:
	$(MAKE) --no-print-directory bench BENCH_FLAGS=--fail-on-targets

clean:
	rm -rf $(VENV) build src/*.egg-info src/paygkit/token/*.so
	$(MAKE) -C firmware clean
