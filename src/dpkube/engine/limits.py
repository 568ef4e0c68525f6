"""A cheap scan of a payload's JSON document before a parser sees it: nesting depth and size.

JSON documents feed recursive builders (OpenDP's, diffprivlib's); they are bounded here in linear time,
with refusals that name the limit, never the text. SQL is bounded the same way where the payload model
is validated (`models.payloads.shallow_sql`), before it reaches the engine.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from dpkube.engine.errors import PayloadRejected

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects in a payload's JSON document."""
MAX_JSON_CONTAINERS = 20_000
"""Most arrays and objects in a payload's JSON document."""

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.|\\\Z)*(?:"|\Z)', re.DOTALL)
"""A JSON string; unclosed, or ending in a lone backslash, it runs to the end (no match can fail and backtrack)."""


def _max_depth(opening: npt.NDArray[np.bool_], closing: npt.NDArray[np.bool_]) -> int:
    """The deepest point of a running sum of openings minus closings (0 when there is none)."""
    steps = opening.astype(np.int64) - closing.astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def _codes(text: str) -> npt.NDArray[np.uint32]:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def check_json(text: str, field: str) -> None:
    """Refuse a JSON document nested deeper than MAX_JSON_DEPTH or holding too many containers."""
    codes = _codes(_JSON_STRING.sub('""', text))
    opening = (codes == ord("[")) | (codes == ord("{"))
    closing = (codes == ord("]")) | (codes == ord("}"))
    if _max_depth(opening, closing) > MAX_JSON_DEPTH:
        raise PayloadRejected(f"{field} is nested deeper than {MAX_JSON_DEPTH} levels")
    if int(opening.sum()) > MAX_JSON_CONTAINERS:
        raise PayloadRejected(f"{field} holds more than {MAX_JSON_CONTAINERS} arrays and objects")
