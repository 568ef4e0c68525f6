"""Payload bounds that hold before any library sees the payload: SQL nesting depth and size."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dpkube.models.payloads import MAX_SQL_NESTING, MAX_SQL_TOKENS, SmartnoiseSQLPayload, SmartnoiseSynthPayload


def sql(query: str) -> SmartnoiseSQLPayload:
    return SmartnoiseSQLPayload(query_str=query, epsilon=0.1, delta=1e-5)


def nested(depth: int) -> str:
    return "SELECT COUNT(*) AS n FROM df WHERE " + "(" * depth + "bill_length_mm > 40" + ")" * depth


def test_sql_nested_to_the_limit_is_accepted() -> None:
    assert sql(nested(MAX_SQL_NESTING)).query_str == nested(MAX_SQL_NESTING)


def test_sql_nested_past_the_limit_is_refused_naming_the_limit() -> None:
    with pytest.raises(ValidationError, match=f"deeper than {MAX_SQL_NESTING} levels"):
        sql(nested(1000))


def test_parentheses_inside_literals_and_comments_do_not_count() -> None:
    query = "SELECT COUNT(*) AS n FROM df WHERE species = '" + "(" * 100 + "' /* " + "(" * 100 + " */"
    assert sql(query).query_str == query


def test_an_unclosed_literal_is_left_to_the_parser() -> None:
    query = "SELECT COUNT(*) AS n FROM df WHERE sex = '" + "(" * 1_000
    assert sql(query).query_str == query


def test_sql_with_too_many_tokens_is_refused() -> None:
    with pytest.raises(ValidationError, match=f"more than {MAX_SQL_TOKENS} tokens"):
        sql("SELECT COUNT(*) FROM df WHERE " + " AND ".join(["bill_length_mm > 1"] * 300))


def test_many_parentheses_side_by_side_are_not_nesting() -> None:
    query = "SELECT COUNT(*) AS n FROM df WHERE " + " OR ".join(["(bill_length_mm > 40)"] * 100)
    assert sql(query).query_str == query


def test_a_synth_condition_is_bounded_alike() -> None:
    with pytest.raises(ValidationError, match="deeper than"):
        SmartnoiseSynthPayload(synth_name="mwem", epsilon=1.0, condition="(" * 40 + "a > 1" + ")" * 40)
