# bastion: `make run` serves the index, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/bastion serve

test: $(VENV)/.installed-test
	bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh
	$(BIN)/ruff check src tests
	$(BIN)/python -m mypy --strict src/bastion/core src/bastion/security
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests
	$(BIN)/python -m mypy --strict src/bastion/core src/bastion/security

bench: $(VENV)/.installed-test
	$(BIN)/python bench/simple_page.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
