"""Parses the query timeouts users write (`30s`, `5m`, `24h`, `1h30m`, `2d`), as Dioptra does."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Seconds in a duration; raises ValueError for anything else."""
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 24h)")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
