"""Dioptra workflow archives as the stock client uploads them."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

API = "/api/v0"
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


async def wait_for_status(http, caller, job_id: str, *statuses: str, seconds: float = 150) -> dict:
    """The job as the facade shows it once its status is one of `statuses` (or as it is past `seconds`)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        job = (await http.get(f"{API}/job/{job_id}", headers=caller.basic)).json()
        if job["status"] in statuses or asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.3)
