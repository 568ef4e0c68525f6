"""Payload fields that carry a JSON document with a version (opendp_json, diffprivlib_json, synth constraints):
parsed and version-checked alike for every library, with the same refusals.

A document nested deeper than `limits.MAX_JSON_DEPTH` is refused before it is even parsed: the libraries'
decoders recurse once or more per level."""

from __future__ import annotations

import json
from typing import Any

from dpkube.engine import limits
from dpkube.engine.errors import PayloadRejected


def parse(text: str, field: str) -> Any:
    """The document in `field`, or a refusal naming the field and JSON's complaint (depth and size checked first)."""
    limits.check_json(text, field)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PayloadRejected(f"{field} is not valid JSON: {e.msg}") from None


def check_version(version: Any, field: str, accepted: tuple[str, ...], *, installed: str = "",
                  bare_line: bool = False) -> str:
    """`version` if it is in one of the `accepted` release lines (`0.10.x`; with `bare_line`, `0.10` too)."""
    if isinstance(version, str) and any(
        (bare_line and version == line) or version.startswith(line + ".") for line in accepted
    ):
        return version
    raise PayloadRejected(
        f"{field} version {version!r} is not supported; accepted: " + ", ".join(f"{line}.x" for line in accepted)
        + (f" (run on {installed})" if installed else "")
    )
