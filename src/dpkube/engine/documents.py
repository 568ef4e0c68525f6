"""Payload fields that carry a JSON document with a version (opendp_json, diffprivlib_json, synth constraints):
parsed and version-checked alike for every library, with the same refusals.

A document nested deeper than MAX_DEPTH is refused before any library walks it: the libraries' decoders
recurse once or more per level."""

from __future__ import annotations

import json
from typing import Any

from dpkube.engine.errors import PayloadRejected

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects in a document (a long OpenDP chain needs about 30)."""


def parse(text: str, field: str) -> Any:
    """The document in `field`, or a refusal naming the field and JSON's complaint (or its depth)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise PayloadRejected(f"{field} is not valid JSON: {e.msg}") from None
    except RecursionError:
        raise _too_deep(field) from None
    if depth(document) > MAX_DEPTH:
        raise _too_deep(field)
    return document


def _too_deep(field: str) -> PayloadRejected:
    return PayloadRejected(f"{field} is nested deeper than {MAX_DEPTH} levels")


def depth(document: Any) -> int:
    """Levels of arrays and objects in a parsed JSON document (a scalar is 0), without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        node, level = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest


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
