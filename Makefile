# The two commands of the README: `make run` and `make test`. Everything installs into .venv.
.PHONY: setup system browser run test lint bench
VENV := .venv
PY := $(VENV)/bin/python

setup:
	bash scripts/setup.sh

# Debian packages the tests use for real: Chromium, Tesseract, Orthanc, PostgreSQL, nginx (root/sudo; idempotent).
system:
	bash scripts/system-deps.sh

run: setup
	$(VENV)/bin/radassist serve

# Lint (ruff + mypy) first: CI runs this target, so the tooling carries the design.
test: setup system lint
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check assistant retrieval prompts ui tests bench
	$(VENV)/bin/mypy assistant retrieval prompts ui

bench: setup
	$(PY) -m bench.bench_llm

# Old name of the target, kept for scripts that call it.
browser: system
