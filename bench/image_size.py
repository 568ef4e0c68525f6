"""Estimate the image's uncompressed size with the CPU build of torch, from what the dev venv has installed.

`python -m bench.cluster` measures the images actually built (here, with PyPI's torch and its CUDA wheels).

Each row is measured from the venv's RECORD files (installed bytes, .pyc included) for the pins of
requirements/image.lock; torch is the venv's CUDA build less its CUDA-only libraries, which is about
what the CPU wheel installs. The base image is not measured: BASE_MB is python:3.11-slim-bookworm's
usual uncompressed size. The CUDA rows are what the image leaves out.

    python -m bench.image_size [--top 15]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "image.lock"
BASE_MB = 130  # python:3.11-slim-bookworm, uncompressed (about 45 MB compressed); assumed, not measured
CUDA = re.compile(r"^(nvidia-.+|cuda-.+|triton)$")
# Libraries of torch's CUDA build that its CPU build does not ship.
TORCH_CUDA_FILES = re.compile(r"^torch/lib/lib(torch_cuda.*|c10_cuda|caffe2_nvrtc|torch_nvshmem)\.so$")
MB = 1_000_000


def installed_files(name: str) -> dict[str, int]:
    """Path (relative to site-packages) -> bytes of every file the distribution installed."""
    dist = md.distribution(name)
    sizes = {}
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        if path.is_file():
            sizes[file.as_posix()] = path.stat().st_size
    return sizes


def locked_names() -> list[str]:
    names = []
    for line in LOCK.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            names.append(requirement.split("==", 1)[0])
    return names


def dpkube_source_bytes() -> int:
    """The project's own files as the wheel holds them (the dev install is editable, so RECORD says nothing)."""
    return sum(path.stat().st_size
               for folder in ("src", "operator", "api")
               for path in (REPO / folder / "dpkube").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=15, help="distributions listed one by one")
    args = parser.parse_args(argv)

    locked = {name: sum(installed_files(name).values()) for name in locked_names()}
    torch_files = installed_files("torch")
    torch_cuda = sum(size for path, size in torch_files.items() if TORCH_CUDA_FILES.match(path))
    torch_cpu = sum(torch_files.values()) - torch_cuda
    cuda_wheels = {dist.metadata["Name"]: sum(installed_files(dist.metadata["Name"]).values())
                   for dist in md.distributions() if CUDA.match(canonicalize_name(dist.metadata["Name"]))}

    ranked = sorted(locked.items(), key=lambda item: -item[1])
    rows = [(name, size) for name, size in ranked[: args.top]]
    rest = ranked[args.top:]
    rows.append((f"{len(rest)} more pins of image.lock", sum(size for _, size in rest)))
    rows.append(("dpkube (sources; the wheel adds .pyc)", dpkube_source_bytes()))
    rows.append(("torch, CPU build (venv's torch less CUDA libs)", torch_cpu))
    venv = sum(size for _, size in rows)

    print(f"{'component':<50} {'MB':>8}")
    for name, size in rows:
        print(f"{name:<50} {size / MB:>8.1f}")
    print(f"{'= the venv /opt/dpkube':<50} {venv / MB:>8.1f}")
    print(f"{'+ python:3.11-slim-bookworm (assumed)':<50} {BASE_MB:>8.1f}")
    print(f"{'= image, uncompressed':<50} {venv / MB + BASE_MB:>8.1f}")
    print()
    print("left out by the CPU-only torch:")
    print(f"{'  torch CUDA libraries (libtorch_cuda*.so, ...)':<50} {torch_cuda / MB:>8.1f}")
    print(f"{f'  {len(cuda_wheels)} CUDA wheels (nvidia-*, cuda-*, triton)':<50} "
          f"{sum(cuda_wheels.values()) / MB:>8.1f}")


if __name__ == "__main__":
    main()
