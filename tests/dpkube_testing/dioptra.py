"""Dioptra workflow archives as the stock client uploads them."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "dioptra-workflow" / "MLproject"


def workflow(project: bytes | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    """A tar.gz holding `dioptra-workflow/MLproject` (the example unless told otherwise)."""
    return tar_gz({"dioptra-workflow/MLproject": EXAMPLE.read_bytes() if project is None else project, **(extra or {})})


def tar_gz(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """A gzipped tar of the given files (and symlinks), as Dioptra's client packs workflows and plugins."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()
