"""Depth and size limits on SQL and JSON inputs, checked before any parser sees them (through the engine)."""

from __future__ import annotations

import json

import pytest

from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import PayloadRejected
from dpkube.engine.limits import MAX_JSON_DEPTH, check_json
from dpkube.models.examples import query_payload as seed_query
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import MAX_SQL_NESTING, Library


def nested_where(depth: int) -> str:
    return "SELECT COUNT(*) AS n FROM df WHERE " + "(" * depth + "bill_length_mm > 40" + ")" * depth


def test_sql_nested_a_thousand_parentheses_deep_is_refused_by_the_scanner(penguin_metadata: Metadata) -> None:
    payload = seed_query(Library.SMARTNOISE_SQL, query_str=nested_where(1_000))
    with pytest.raises(PayloadRejected, match=f"deeper than {MAX_SQL_NESTING} levels"):
        estimate_cost(Library.SMARTNOISE_SQL, payload, penguin_metadata)


def test_sql_at_the_depth_limit_is_priced(penguin_metadata: Metadata) -> None:
    payload = seed_query(Library.SMARTNOISE_SQL, query_str=nested_where(MAX_SQL_NESTING - 1))
    assert estimate_cost(Library.SMARTNOISE_SQL, payload, penguin_metadata).epsilon > 0


def test_json_nested_too_deep_is_refused_before_parsing(penguin_metadata: Metadata) -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    payload = {"opendp_json": json.dumps({"version": "0.10.0", "ast": "x"})[:-1] + ', "pad": ' + deep + "}"}
    with pytest.raises(PayloadRejected, match=f"opendp_json is nested deeper than {MAX_JSON_DEPTH} levels"):
        estimate_cost(Library.OPENDP, payload, penguin_metadata)


def test_brackets_inside_json_strings_do_not_count() -> None:
    check_json(json.dumps({"a": "[" * 1_000, "b": "\\" + "{" * 1_000}), "field")


def test_json_with_too_many_containers_is_refused() -> None:
    with pytest.raises(PayloadRejected, match="more than 20000 arrays and objects"):
        check_json("[" + ",".join(["[]"] * 20_001) + "]", "field")
