# Two entry points (see README): `make compile` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: setup compile test test-quick check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[compile,test]'
	touch $(STAMP)

setup: $(STAMP)

compile: $(STAMP)
	$(VENV)/bin/gen compile

check: $(STAMP)
	$(VENV)/bin/gen validate
	$(VENV)/bin/gen compile --check

# The servers are built first (they need the module proxy); the tests then run in a network
# namespace with only loopback (tools/offline), and nothing may skip.
test: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/gen compile --check
	tools/build-envtest.sh >/dev/null
	tools/build-n9e.sh >/dev/null
	tools/install-chromium.sh
	tools/install-kapitan.sh >/dev/null
	KAPITAN="$$(tools/install-kapitan.sh)" GEN_REQUIRE_N9E=1 GEN_NO_SKIP=1 tools/offline $(VENV)/bin/pytest

# Quick loop for contributors: no server needed.
test-quick: $(STAMP)
	$(VENV)/bin/pytest -m "not kube and not n9e"

bench: $(STAMP)
	$(VENV)/bin/python bench/compile.py

clean:
	rm -rf $(VENV) .gen-cache
