"""The image archive is rebuilt when anything the Docker build reads changes, and only then."""

from __future__ import annotations

import shutil
from pathlib import Path

from dpkube.cluster.images import BUILD_INPUTS, inputs_digest

REPO = Path(__file__).resolve().parents[3]


def copy_of_the_build_inputs(target: Path) -> Path:
    for name in BUILD_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_a_changed_source_file_changes_the_digest(tmp_path: Path) -> None:
    tree = copy_of_the_build_inputs(tmp_path)
    before = inputs_digest(tree)
    (tree / "src" / "dpkube" / "cluster" / "__init__.py").write_text('"""changed"""\n')
    assert inputs_digest(tree) != before


def test_bytecode_caches_leave_the_digest_alone(tmp_path: Path) -> None:
    tree = copy_of_the_build_inputs(tmp_path)
    before = inputs_digest(tree)
    cache = tree / "src" / "dpkube" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    assert inputs_digest(tree) == before


def test_build_arguments_change_the_digest(tmp_path: Path) -> None:
    tree = copy_of_the_build_inputs(tmp_path)
    assert inputs_digest(tree, "torch-index-a") != inputs_digest(tree, "torch-index-b")


def test_every_file_the_dockerfile_copies_is_an_input() -> None:
    copied = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied |= set(line.split()[1:-1])
    assert {Path(c).parts[0] if Path(c).parts[0] != "requirements" else c for c in copied} <= set(BUILD_INPUTS)
