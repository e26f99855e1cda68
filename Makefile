# carebridge: `make run` serves the API with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck bench clean browser-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# reindex first: a store kept from an older checkout may hold rows built from older definitions
run: $(STAMP)
	$(VENV)/bin/carebridge reindex
	$(VENV)/bin/carebridge serve --demo-data

test: $(STAMP)
	-@$(MAKE) --no-print-directory browser-deps || echo "chromium could not be installed: the /profiles browser test will skip"
	$(PY) -m pytest -n 2 -q

# Debian's chromium, for the browser test of the /profiles pages (it skips, saying so, without it)
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy carebridge server adapters

clean:
	rm -rf $(VENV) var/carebridge.sqlite*
