# Two commands on a fresh machine: `make demo` and `make test` (both set up .venv first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench browser clean

install: $(STAMP)

# torch is pinned to the releases that lie on this machine's disk (no multi-GB download).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $(STAMP)

# Headless Debian chromium + chromedriver for the browser tests (skipped where apt is unavailable).
browser:
	@command -v chromedriver >/dev/null 2>&1 || sh scripts/install-browser.sh

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/fashionlens demo

test: install browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks

# The quick benchmarks (encoders_throughput, index_search, sales_synthetic) with their default
# arguments, via benchmarks/run_all.py (`--list`, `--only NAME`); the long ones are run by hand.
bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
