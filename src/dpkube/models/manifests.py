"""Renders the generated CRD manifests into `crds/` (`make crds`); a test fails when they are stale."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from dpkube.models.kinds import KINDS

HEADER = "# Generated from the pydantic models by `make crds`; do not edit.\n"


def render_crds() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {
        f"{kind.crd_name}.yaml": HEADER + yaml.safe_dump(kind.crd(), sort_keys=False, width=100)
        for kind in KINDS
    }


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into `directory`, removing stale generated files."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_crds()
    for stale in directory.glob("*.dpkube.io.yaml"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_crds(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(path)
