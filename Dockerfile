# dpkube: one image for every component; the command picks the role.
#
#   operator        python -m dpkube.operator
#   REST facade     uvicorn --factory dpkube.api.main:app_from_env --host 0.0.0.0 --port 8000
#   node agent      python -m dpkube.nodeagent --node NAME
#   query runner    python -m dpkube.runner ...   (the operator starts it in each query's pod)
#   CLI             dpkube --help                 (the default command)
#
# Build: `make image` (docker build -t dpkube:0.1.0 .). The Python dependencies are exact pins from
# requirements/image.lock (`python hack/lock_image.py` writes it from the dev venv) installed with
# --no-deps; torch is the CPU-only build from the PyTorch CPU index, at the dev venv's version. PyPI's
# Linux torch would add about 4.3 GB of nvidia-*/cuda-* wheels and triton, and 0.5 GB of CUDA
# libraries in torch itself, that no component uses (`python -m bench.image_size` measures them).
# The final stage holds the base image, the venv and a non-root user: no compiler, no pip, no caches.

ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# The dev venv's torch (tests/unit/test_image.py keeps them equal).
ARG TORCH_VERSION=2.15.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

RUN python -m venv /opt/dpkube \
 && python -m venv /opt/build

# The CPU build of torch, alone: its own dependencies are pinned in image.lock, and the CPU index
# holds no nvidia-*/triton wheels for pip to reach for.
RUN /opt/dpkube/bin/pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# Wheels for every pin: PyPI's as they are, and the source-only ones (antlr4-python3-runtime) built
# with the pinned setuptools of image-build.lock, so nothing unpinned is fetched to build them.
COPY requirements/image.lock requirements/image-build.lock /src/requirements/
RUN /opt/build/bin/pip install --no-deps -r /src/requirements/image-build.lock \
 && /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels \
      -r /src/requirements/image.lock \
 && /opt/dpkube/bin/pip install --no-deps --no-index --find-links /tmp/wheels \
      -r /src/requirements/image.lock

COPY pyproject.toml README.md /src/
COPY src /src/src
COPY operator /src/operator
COPY api /src/api
WORKDIR /src
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dpkube . \
 && /opt/dpkube/bin/pip install --no-deps --no-index /tmp/dpkube/dpkube-*.whl \
 && /opt/dpkube/bin/pip check \
 && /opt/dpkube/bin/python -m pip uninstall --yes pip

FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="dpkube" \
      org.opencontainers.image.description="Kubernetes-native differentially private queries: operator, REST facade, node agent and query runner." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/${PYTHON_IMAGE}"

# A named account for uid 10001: getpass.getuser() and friends need a passwd entry.
RUN groupadd --system --gid 10001 dpkube \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dpkube

COPY --from=builder /opt/dpkube /opt/dpkube

ENV PATH=/opt/dpkube/bin:$PATH \
    VIRTUAL_ENV=/opt/dpkube \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
CMD ["dpkube", "--help"]
