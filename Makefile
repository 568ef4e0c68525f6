# The two commands a fresh machine needs: `make dev` runs the platform, `make test` runs the tests (every tier,
# the real cluster's among them: it installs that tier's Debian packages first, as root).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
IMAGE ?= dpkube:0.1.0

.PHONY: dev test install crds bench lint clean image image-lint image-lock e2e e2e-kind prereqs cluster-up cluster-down

$(STAMP): pyproject.toml requirements/image.lock requirements/venv.constraints
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c requirements/venv.constraints
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(PY) -m dpkube.cli dev

test: $(STAMP) prereqs
	$(PY) -m dpkube.cli binaries --cluster
	$(PY) -m pytest

prereqs:  ## Debian packages of the image build, the real cluster and the browser tests (apt-get, as root; a no-op when present)
	bash hack/prereqs.sh

cluster-up: $(STAMP) prereqs  ## a real single-node cluster with dpkube's images in its containerd (root)
	$(PY) -m dpkube.cli binaries --cluster
	$(PY) -m dpkube.cli cluster up

cluster-down: $(STAMP)  ## stop it: every process by PID, the bridge, mounts and iptables chains removed
	$(PY) -m dpkube.cli cluster down

crds: $(STAMP)  ## CRDs, examples/ and the chart's generated files
	$(PY) -m dpkube.cli.manifests .

bench: $(STAMP)  ## bench.lomas installs lomas-server 0.3.5 from PyPI into ~/.cache/dpkube on first use
	$(PY) -m bench.engine
	$(PY) -m bench.operator
	$(PY) -m bench.api
	$(PY) -m bench.dashboard
	$(PY) -m bench.failover
	$(PY) -m bench.attacks
	$(PY) -m bench.scale
	$(PY) -m bench.kube_client
	$(PY) -m bench.zcdp
	$(PY) -m bench.lomas
	$(PY) -m bench.floor
	$(PY) -m bench.cluster

lint: $(STAMP)  ## style, the import layers (import-linter) and types (mypy: strict on models, budget, engine, domain)
	$(PY) -m ruff check src operator api tests bench hack
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

image: $(STAMP)  ## $(IMAGE) (every role) and $(IMAGE)-core (no torch), with BuildKit; a private dockerd if none runs
	$(PY) -m dpkube.cli image --tag $(IMAGE) --core-tag $(IMAGE)-core

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
