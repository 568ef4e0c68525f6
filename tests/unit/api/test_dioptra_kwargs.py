"""entryPointKwargs and timeout: Dioptra's grammar, plus compound durations."""

from __future__ import annotations

import pytest

from dpkube.api.services.dioptra.kwargs import KwargsError, parse_kwargs, parse_timeout


def test_kwargs_are_split_shell_style_with_P_stripped_at_the_first_equals() -> None:
    assert parse_kwargs("-P epsilon=1.0 -Pq=x=y") == {"epsilon": "1.0", "q": "x=y"}


def test_quoted_kwargs_keep_their_spaces() -> None:
    assert parse_kwargs("-P 'sql=SELECT 1' -P name=\"a b\"") == {"sql": "SELECT 1", "name": "a b"}


def test_tokens_without_equals_and_lone_P_are_ignored_and_a_later_key_wins() -> None:
    assert parse_kwargs("-P flag -P a=1 -P a=2") == {"a": "2"}


def test_no_kwargs_is_empty() -> None:
    assert parse_kwargs(None) == {} and parse_kwargs("") == {}


def test_unbalanced_quotes_are_refused() -> None:
    with pytest.raises(KwargsError):
        parse_kwargs("-P a='b")


@pytest.mark.parametrize(("raw", "echoed", "duration"), [
    (None, "24h", "24h"), ("", "24h", "24h"), ("3600", "3600", "3600s"), ("90m", "90m", "90m"),
    ("2d", "2d", "2d"), ("1h30m", "1h30m", "1h30m"),
])
def test_timeouts_in_seconds_or_units_are_echoed_and_become_durations(raw, echoed, duration) -> None:
    assert parse_timeout(raw) == (echoed, duration)


@pytest.mark.parametrize("raw", ["abc", "1.5h", "-3", "10w", "h"])
def test_other_timeouts_are_refused(raw) -> None:
    with pytest.raises(KwargsError):
        parse_timeout(raw)
