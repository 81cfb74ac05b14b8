# Two entry points (see README): `make compile` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: setup compile test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

compile: $(STAMP)
	$(VENV)/bin/gen compile

check: $(STAMP)
	$(VENV)/bin/gen validate
	$(VENV)/bin/gen compile --check

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/gen compile --check
	tools/build-envtest.sh >/dev/null
	$(VENV)/bin/pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/compile.py

clean:
	rm -rf $(VENV) .gen-cache
