"""Cheap scans of untrusted text before a parser sees it: nesting depth, token count and size.

smartnoise-sql's ANTLR parser takes seconds to refuse a WHERE clause with a thousand nested
parentheses, and JSON documents feed recursive builders; both are bounded here in linear time,
with refusals that name the limit, never the text.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from dpkube.engine.errors import PayloadRejected

MAX_SQL_DEPTH = 32
"""Deepest parenthesis nesting a query may use (the parser spends about 2 ms per level)."""
MAX_SQL_TOKENS = 1_000
"""Most lexical tokens a query may hold (about 0.1 s of parsing at the limit)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects in a payload's JSON document."""
MAX_JSON_CONTAINERS = 20_000
"""Most arrays and objects in a payload's JSON document."""

_SQL_QUOTED = re.compile(
    r"'(?:[^']|'')*(?:'|\Z)|\"(?:[^\"]|\"\")*(?:\"|\Z)|\[[^\]]*(?:\]|\Z)|--[^\n]*|/\*.*?(?:\*/|\Z)", re.DOTALL
)
"""Literals, quoted identifiers and comments; an unclosed one runs to the end (no match can fail and backtrack)."""
_SQL_TOKEN = re.compile(r"\w+|[^\w\s]")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.|\\\Z)*(?:"|\Z)', re.DOTALL)
"""A JSON string; unclosed, or ending in a lone backslash, it runs to the end (no match can fail and backtrack)."""


def _max_depth(opening: npt.NDArray[np.bool_], closing: npt.NDArray[np.bool_]) -> int:
    """The deepest point of a running sum of openings minus closings (0 when there is none)."""
    steps = opening.astype(np.int64) - closing.astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def _codes(text: str) -> npt.NDArray[np.uint32]:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def check_sql(query_str: str) -> None:
    """Refuse a query whose parenthesis depth or token count exceeds the limits.

    Quoted strings, quoted identifiers and comments are blanked first, so a parenthesis inside a
    literal does not count.
    """
    bare = _SQL_QUOTED.sub("''", query_str)
    codes = _codes(bare)
    depth = _max_depth(codes == ord("("), codes == ord(")"))
    if depth > MAX_SQL_DEPTH:
        raise PayloadRejected(f"query_str nests parentheses deeper than {MAX_SQL_DEPTH} levels")
    tokens = sum(1 for _ in _SQL_TOKEN.finditer(bare))
    if tokens > MAX_SQL_TOKENS:
        raise PayloadRejected(f"query_str has more than {MAX_SQL_TOKENS} tokens")


def check_json(text: str, field: str) -> None:
    """Refuse a JSON document nested deeper than MAX_JSON_DEPTH or holding too many containers."""
    codes = _codes(_JSON_STRING.sub('""', text))
    opening = (codes == ord("[")) | (codes == ord("{"))
    closing = (codes == ord("]")) | (codes == ord("}"))
    if _max_depth(opening, closing) > MAX_JSON_DEPTH:
        raise PayloadRejected(f"{field} is nested deeper than {MAX_JSON_DEPTH} levels")
    if int(opening.sum()) > MAX_JSON_CONTAINERS:
        raise PayloadRejected(f"{field} holds more than {MAX_JSON_CONTAINERS} arrays and objects")
