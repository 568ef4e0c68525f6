"""Hostile inputs of the denial-of-service battery (and `bench/attacks.py`): small requests, huge work.

Each is what issue 10 reported: a YAML alias bomb, a bz2 tar bomb whose header claims 1 TB, a SQL
WHERE nested a thousand parentheses deep, and bad tokens.
"""

from __future__ import annotations

import bz2
import functools
import io
import secrets
import tarfile

from dpkube.models import examples

PROJECT_PATH = "dioptra-workflow/MLproject"
CLAIMED_BYTES = 2**40
"""What the bz2 bomb's one member says it holds: 1 TiB."""
ZERO_CHUNK = 100 * 2**20
"""Each concatenated bz2 stream of the bomb unpacks to 100 MiB of zeros (about 110 bytes compressed)."""


def alias_bomb(levels: int = 9) -> bytes:
    """An MLproject of about 500 bytes whose payload holds 9**levels strings through nested YAML aliases."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"]
    for level in range(1, levels + 1):
        name, previous = names[level], names[level - 1]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    lines += ["entry_points:", "  main:", "    library: smartnoise-sql", "    dataset: PENGUIN",
              "    payload:", "      query_str: SELECT COUNT(*) AS n FROM df", "      epsilon: 0.1",
              "      delta: 0.00001", f"      mechanisms: *{names[levels]}"]
    return ("\n".join(lines) + "\n").encode()


def tar_gz_project(project: bytes) -> bytes:
    """A workflow archive holding only `project` as its MLproject."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(PROJECT_PATH)
        info.size = len(project)
        archive.addfile(info, io.BytesIO(project))
    return buffer.getvalue()


@functools.cache
def bz2_bomb(streams: int = 4000) -> bytes:
    """A bz2 tar of about 450 KB: one member whose header claims 1 TiB, followed by `streams` x 100 MiB of
    zeros (bz2 reads concatenated streams as one). Reading it to the end means inflating about 400 GB."""
    header = tarfile.TarInfo(PROJECT_PATH)
    header.size = CLAIMED_BYTES
    first = bz2.compress(header.tobuf(format=tarfile.GNU_FORMAT))
    return first + bz2.compress(b"\0" * ZERO_CHUNK) * streams


def nested_sql(depth: int = 1000) -> dict[str, object]:
    """The seed's SQL cost request with a WHERE clause nested `depth` parentheses deep."""
    where = "(" * depth + "bill_length_mm > 40" + ")" * depth
    return {**examples.SMARTNOISE_SQL_COST, "query_str": f"SELECT COUNT(*) AS NB_ROW FROM df WHERE {where}"}


def bad_token(index: int) -> str:
    """Distinct wrong tokens: even ones look like API tokens, odd ones go to the API server's TokenReview."""
    return ("dpk_" if index % 2 == 0 else "") + secrets.token_urlsafe(32)
