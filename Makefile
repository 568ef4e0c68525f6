# The two commands a fresh machine needs: `make dev` runs the platform, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test install crds bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(PY) -m dpkube.cli dev

test: $(STAMP)
	$(PY) -m dpkube.cli binaries
	$(PY) -m pytest

crds: $(STAMP)  ## CRDs, examples/ and the chart's generated files
	$(PY) -m dpkube.models.manifests .

bench: $(STAMP)
	$(PY) -m bench.engine
	$(PY) -m bench.operator
	$(PY) -m bench.api

lint: $(STAMP)
	$(PY) -m ruff check src operator api tests bench

clean:
	rm -rf $(VENV) .dev dist build
