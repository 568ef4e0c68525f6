"""Write the container image's pinned dependency locks from the dev venv.

The image installs exactly these pins with `pip install --no-deps`, so it ships the versions the tests
ran against here instead of whatever PyPI serves on the day of the build.

    python hack/lock_image.py           # rewrite requirements/image.lock and requirements/image-build.lock
    python hack/lock_image.py --check   # exit 1 if either file differs from what the venv gives now

image.lock is the closure of [project].dependencies, followed as pip would on the image's platform
(CPython 3.11, Linux; extras only where asked for). torch is walked into but not pinned: the Dockerfile
installs its CPU build (ARG TORCH_VERSION) with --no-deps, so its pure-Python dependencies come from
here, and the CUDA wheels of PyPI's torch (nvidia-*, cuda-*, triton) are left out. image-build.lock
is the closure of [build-system].requires plus setuptools, for the builder stage's wheel builds.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

REPO = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = REPO / "requirements" / "image.lock"
TORCH_CUDA_LOCK = REPO / "requirements" / "image-torch-cuda.lock"
BUILD_LOCK = REPO / "requirements" / "image-build.lock"
DOCKERFILE = REPO / "Dockerfile"

TORCH = canonicalize_name("torch")
TRITON = canonicalize_name("triton")  # torch.compile's compiler: `import torch` never loads it
# Build backends of the runtime pins that PyPI has only as source: antlr4-python3-runtime 4.9.3
# (smartnoise-sql's exact pin) is a setup.py sdist. The builder stage builds it without isolation.
SDIST_BACKENDS = ["setuptools>=70.1"]  # 70.1 has bdist_wheel built in, so no `wheel` package
CUDA = re.compile(r"^(nvidia-.+|cuda-.+|triton)$")
# The image's interpreter and platform: the markers of every requirement are evaluated for it.
TARGET_PYTHON = (3, 11)
TARGET_MARKERS = {
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
}


def is_cuda(name: str) -> bool:
    """CUDA runtime wheels that only a GPU build of torch wants; the CPU image has no use for them."""
    return bool(CUDA.match(canonicalize_name(name)))


@dataclass
class Closure:
    """Installed versions of every distribution reached, and who asked for each (for the `# via` notes)."""

    versions: dict[NormalizedName, str] = field(default_factory=dict)
    via: dict[NormalizedName, set[str]] = field(default_factory=dict)


def applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    """Whether pip would install this requirement on the image's platform, given the extras asked for."""
    if requirement.marker is None:
        return True
    environment = {**default_environment(), **TARGET_MARKERS}
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras))


def walk(roots: Iterable[str], root_name: str, cuda: bool = False) -> Closure:
    """The installed closure of `roots`, without torch's pin and without CUDA wheels; or, with `cuda`, only
    the CUDA wheels (triton aside)."""
    closure = Closure()
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    pending = [(Requirement(text), root_name) for text in roots]
    problems: list[str] = []
    while pending:
        requirement, parent = pending.pop()
        name = canonicalize_name(requirement.name)
        if is_cuda(name) != cuda or name == TRITON:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            problems.append(f"{requirement} (wanted by {parent}) is not installed")
            continue
        if not requirement.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{requirement} (wanted by {parent}) but {dist.version} is installed")
        if name != TORCH:
            closure.versions[name] = dist.version
            closure.via.setdefault(name, set()).add(parent)
        key = (name, frozenset(canonicalize_name(extra) for extra in requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            child = Requirement(text)
            if applies(child, key[1]):
                pending.append((child, name))
    if problems:
        raise SystemExit("the venv does not hold the closure (run `make install`):\n  " + "\n  ".join(problems))
    return closure


def render(closure: Closure, header: str) -> str:
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    for name in sorted(closure.versions):
        lines.append(f"{name}=={closure.versions[name]}  # via {', '.join(sorted(closure.via[name]))}")
    return "\n".join(lines) + "\n"


RUNTIME_HEADER = """
Generated by `python hack/lock_image.py` from the dev venv; do not edit by hand.
The runtime closure of pyproject.toml's [project].dependencies for CPython 3.11 on Linux, installed
into the image with `pip install --no-deps`. torch is not here: the Dockerfile installs the CPU build
(ARG TORCH_VERSION, the venv's version) from the PyTorch CPU index. Neither are nvidia-*, cuda-* and
triton, which only PyPI's CUDA build of torch needs.
"""

TORCH_CUDA_HEADER = """
Generated by `python hack/lock_image.py` from the dev venv; do not edit by hand.
The CUDA wheels that PyPI's torch (the venv's) needs to import: its libtorch_cuda.so links their libraries.
The Dockerfile installs them with --no-deps beside torch when torch comes from an index whose torch names
them (PyPI), never with the CPU build. triton is left out: only torch.compile uses it.
"""

BUILD_HEADER = """
Generated by `python hack/lock_image.py` from the dev venv; do not edit by hand.
The closure of pyproject.toml's [build-system].requires plus setuptools, for the source-only pins of
image.lock: the image's builder stage installs it into a throwaway venv with `pip install --no-deps`
and builds every wheel without build isolation, so no unpinned build backend is fetched.
"""


def locks() -> dict[Path, str]:
    """Each lock file and the text the venv gives for it now."""
    if sys.version_info[:2] != TARGET_PYTHON:
        raise SystemExit(f"run with the dev venv's Python {'.'.join(map(str, TARGET_PYTHON))}, the image's")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {
        RUNTIME_LOCK: render(walk(pyproject["project"]["dependencies"], "dpkube"), RUNTIME_HEADER),
        TORCH_CUDA_LOCK: render(walk(md.requires("torch") or [], "torch", cuda=True), TORCH_CUDA_HEADER),
        BUILD_LOCK: render(walk([*pyproject["build-system"]["requires"], *SDIST_BACKENDS], "build-system"),
                           BUILD_HEADER),
    }


def dockerfile_torch() -> str | None:
    match = re.search(r"^ARG TORCH_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args(argv)
    stale = False
    for path, text in locks().items():
        old = path.read_text() if path.exists() else ""
        if old == text:
            continue
        stale = True
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                str(path.relative_to(REPO)), "from the venv"))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    torch = md.version("torch")
    if dockerfile_torch() != torch:
        stale = True
        print(f"Dockerfile: set ARG TORCH_VERSION={torch} (the venv's torch; now {dockerfile_torch()})")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
