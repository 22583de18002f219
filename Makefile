# The two commands of the README: `make run` and `make test`. Everything installs into .venv.
.PHONY: setup browser run test lint bench
VENV := .venv
PY := $(VENV)/bin/python

setup:
	bash scripts/setup.sh

# Debian's Chromium for the end-to-end browser test (needs root/sudo; idempotent).
browser:
	bash scripts/browser-deps.sh

run: setup
	$(VENV)/bin/radassist serve

# Lint (ruff + mypy) first: CI runs this target, so the tooling carries the design.
test: setup browser lint
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check assistant retrieval prompts ui tests bench
	$(VENV)/bin/mypy assistant retrieval prompts ui

bench: setup
	$(PY) -m bench.bench_llm
