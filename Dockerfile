# dpkube: one image for every component; the command picks the role.
#
#   operator        python -m dpkube.operator
#   REST facade     uvicorn --factory dpkube.api.main:app_from_env --host 0.0.0.0 --port 8000
#   node agent      python -m dpkube.nodeagent --node NAME
#   query runner    python -m dpkube.runner ...   (the operator starts it in each query's pod)
#   CLI             dpkube --help                 (the default command)
#
# Build: `make image` (BuildKit). Two targets:
#   (last stage, the default)  every role, with torch: the operator and the facade price synthetic-data
#                              queries with opacus, which imports torch, and the synth runner trains with it;
#   --target core              the same without torch: the query pods of SQL, OpenDP and diffprivlib
#                              queries (the chart's runner.image, or a Queue's `image`).
# The Python dependencies are exact pins from requirements/image.lock (`python hack/lock_image.py` writes
# it from the dev venv) installed with --no-deps. torch is installed alone, also with --no-deps: by default
# the CPU build from the PyTorch CPU index; where that index is out of reach, TORCH_INDEX_URL=PyPI gives
# PyPI's CUDA build with the CUDA libraries it links (`python -m bench.cluster` measures both images).
#
# The base is a build argument: PYTHON_IMAGE, python:3.11-slim-bookworm by default. Where no registry is
# reachable, `make image` makes it from Debian's packages (mmdebstrap + docker import; the README lists what
# differs). A TLS-intercepting proxy's CA can be handed to pip as the BuildKit secret `build_ca`; it never
# reaches a layer. The final stages hold the base image, the venv and a non-root user: no compiler, no pip.

ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

RUN python -m venv /opt/dpkube \
 && python -m venv /opt/build

# Wheels for every pin: PyPI's as they are, and the source-only ones (antlr4-python3-runtime) built
# with the pinned setuptools of image-build.lock, so nothing unpinned is fetched to build them.
COPY requirements/image.lock requirements/image-build.lock /src/requirements/
RUN --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi \
 && /opt/build/bin/pip install --no-deps -r /src/requirements/image-build.lock \
 && /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels \
      -r /src/requirements/image.lock \
 && /opt/dpkube/bin/pip install --no-deps --no-index --find-links /tmp/wheels \
      -r /src/requirements/image.lock

COPY pyproject.toml README.md /src/
COPY src /src/src
COPY operator /src/operator
COPY api /src/api
WORKDIR /src
# Without torch, pip check may only say that torch is missing (opacus and smartnoise-synth want it).
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dpkube . \
 && /opt/dpkube/bin/pip install --no-deps --no-index /tmp/dpkube/dpkube-*.whl \
 && { /opt/dpkube/bin/python -m pip check > /tmp/pip-check.txt \
      || ! grep -Ev ' requires torch, which is not installed' /tmp/pip-check.txt; } \
 && /opt/dpkube/bin/python -m pip uninstall --yes pip

# torch alone, outside the venv, in a stage that the core image never needs: the full image adds it as one
# layer. Its own dependencies are pinned in image.lock; its console scripts (torchrun) serve no component.
# A torch that names CUDA wheels (PyPI's) cannot import without their libraries: they come from the pins of
# image-torch-cuda.lock (triton, which only torch.compile uses, stays out). The CPU build names none.
FROM builder AS torch

# The dev venv's torch (tests/unit/test_image.py keeps them equal).
ARG TORCH_VERSION=2.15.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

COPY requirements/image-torch-cuda.lock /src/requirements/
# pip check runs the venv's interpreter with torch on its path, as the full image sees it in site-packages;
# its only complaints may be the CUDA wheels that PyPI's torch names and never needs on CPU (triton).
RUN --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi \
 && /opt/build/bin/pip install --no-deps --target /opt/torch --index-url "${TORCH_INDEX_URL}" \
      "torch==${TORCH_VERSION}" \
 && if grep -qE '^Requires-Dist: (nvidia-|cuda-)' /opt/torch/torch-*.dist-info/METADATA; then \
      /opt/build/bin/pip install --no-deps --target /opt/torch -r /src/requirements/image-torch-cuda.lock; \
    fi \
 && rm -rf /opt/torch/bin \
 && { PYTHONPATH=/opt/torch /opt/build/bin/pip --python /opt/dpkube/bin/python check > /tmp/pip-check.txt \
      || ! grep -Ev '^torch [^ ]+ requires (nvidia-|cuda-|triton)' /tmp/pip-check.txt; }

FROM ${PYTHON_IMAGE} AS core

ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="dpkube" \
      org.opencontainers.image.description="Kubernetes-native differentially private queries: operator, REST facade, node agent and query runner." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A named account for uid 10001: getpass.getuser() and friends need a passwd entry.
RUN groupadd --system --gid 10001 dpkube \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dpkube

COPY --from=builder /opt/dpkube /opt/dpkube

# The root filesystem is read-only where it runs (the chart, query pods): HOME, the temporary folder and
# every cache the libraries may write (matplotlib, numba, torch) point into /tmp, the one writable mount.
ENV PATH=/opt/dpkube/bin:$PATH \
    VIRTUAL_ENV=/opt/dpkube \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    TORCH_HOME=/tmp/torch

USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
CMD ["dpkube", "--help"]

# Every role: the core image plus torch, in a layer of its own (both images share the others).
FROM core

COPY --from=torch /opt/torch /opt/dpkube/lib/python3.11/site-packages
