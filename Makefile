# The two commands a fresh machine needs: `make dev` runs the platform, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
IMAGE ?= dpkube:0.1.0

.PHONY: dev test install crds bench lint clean image image-lint image-lock e2e e2e-kind

$(STAMP): pyproject.toml requirements/image.lock requirements/venv.constraints
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c requirements/venv.constraints
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(PY) -m dpkube.cli dev

test: $(STAMP)
	$(PY) -m dpkube.cli binaries
	$(PY) -m pytest

crds: $(STAMP)  ## CRDs, examples/ and the chart's generated files
	$(PY) -m dpkube.cli.manifests .

bench: $(STAMP)  ## bench.lomas installs lomas-server 0.3.5 from PyPI into ~/.cache/dpkube on first use
	$(PY) -m bench.engine
	$(PY) -m bench.operator
	$(PY) -m bench.api
	$(PY) -m bench.failover
	$(PY) -m bench.attacks
	$(PY) -m bench.scale
	$(PY) -m bench.lomas

lint: $(STAMP)  ## style, the import layers (import-linter) and types (mypy: strict on models, budget, engine, domain)
	$(PY) -m ruff check src operator api tests bench hack
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine answers (docker info failed); build on a machine with one" >&2; exit 1; }
	docker build -t $(IMAGE) .

image-lint: $(STAMP)
	$(VENV)/bin/hadolint Dockerfile

image-lock: $(STAMP)
	$(PY) hack/lock_image.py

e2e: $(STAMP)  ## the end-to-end suite over HTTP: a local platform, or the deployment at DPKUBE_E2E_URL
	$(PY) -m dpkube.cli binaries
	$(PY) -m pytest tests/e2e -m e2e

e2e-kind: $(STAMP)  ## the same suite against the chart on a throwaway kind cluster (Docker, kind, helm, kubectl)
	bash hack/e2e-kind.sh

clean:
	rm -rf $(VENV) .dev dist build
