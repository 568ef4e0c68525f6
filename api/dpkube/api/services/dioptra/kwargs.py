"""The two strings of a job form with a grammar: `entryPointKwargs` (`-P key=value ...`) and `timeout`."""

from __future__ import annotations

import re
import shlex

DEFAULT_TIMEOUT = "24h"
MAX_KWARGS_CHARS = 16_384
_SECONDS = re.compile(r"^[0-9]{1,9}$")
_DURATION = re.compile(r"^([0-9]{1,9}[dhms])+$")


class KwargsError(ValueError):
    """The string does not follow the grammar; the message says where."""


def parse_kwargs(raw: str | None) -> dict[str, str]:
    """Shell-style tokens, a leading `-P` stripped from each, split at the first `=`; a later key wins.

    Tokens without `=` are ignored, as Dioptra does; values stay strings until their declared type applies.
    """
    if not raw:
        return {}
    if len(raw) > MAX_KWARGS_CHARS:
        raise KwargsError(f"entryPointKwargs is longer than {MAX_KWARGS_CHARS} characters")
    try:
        tokens = shlex.split(raw)
    except ValueError as exc:
        raise KwargsError(f"entryPointKwargs: {exc}") from None
    values: dict[str, str] = {}
    for token in tokens:
        token = token.removeprefix("-P")
        key, sep, value = token.partition("=")
        if sep and key:
            values[key] = value
    return values


def parse_timeout(raw: str | None) -> tuple[str, str]:
    """(the timeout as echoed back, the DPQuery duration): seconds, or digits with units d/h/m/s, compounds too."""
    text = (raw or "").strip() or DEFAULT_TIMEOUT
    if _SECONDS.match(text):
        return text, f"{int(text)}s"
    if _DURATION.match(text) and len(text) <= 32:
        return text, text
    raise KwargsError(f"timeout {text!r} is not seconds or digits with a unit of d, h, m, s (e.g. 3600, 90m, 1h30m)")
