"""Timeouts are written as Dioptra writes them."""

from __future__ import annotations

import pytest

from dpkube.operator.domain.durations import parse_duration


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("24h", 86400), ("1h30m", 5400),
                                           ("2d", 172800), ("500ms", 0.5)])
def test_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1x", "h", "1h 2m"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
