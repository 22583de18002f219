# The two commands of the README: `make run` and `make test`. Everything installs into .venv.
.PHONY: setup run test lint bench
VENV := .venv
PY := $(VENV)/bin/python

setup:
	bash scripts/setup.sh

run: setup
	$(VENV)/bin/radassist serve

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check assistant retrieval prompts ui tests bench
	$(VENV)/bin/mypy assistant retrieval prompts ui

bench: setup
	$(PY) -m bench.bench_llm
