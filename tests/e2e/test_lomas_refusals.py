"""Refused queries: a 4xx that says why, and not the smallest charge.

Every test reads the remaining budget before and after, because a refusal that still charged would be a silent
privacy leak.
"""

from __future__ import annotations

import json

import pytest

from dpkube.models import examples

pytestmark = pytest.mark.e2e

SQL = examples.SMARTNOISE_SQL_QUERY


def test_a_negative_epsilon_is_422_naming_the_field_and_spends_nothing(lomas, budget) -> None:
    before = budget.remaining()
    response = lomas.post("/smartnoise_sql_query", json={**SQL, "epsilon": -1.0})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "epsilon"]]
    assert budget.remaining() == before


def test_an_epsilon_too_small_for_the_library_is_422_and_spends_nothing(lomas, budget) -> None:
    """Smartnoise-sql refuses to compute a cost for such a noise scale; Lomas names the library."""
    before = budget.remaining()
    response = lomas.post("/smartnoise_sql_query", json={**SQL, "epsilon": 1e-9})
    assert response.status_code == 422
    assert response.json()["library"] == "smartnoise_sql"
    assert budget.remaining() == before


def test_a_query_over_the_remaining_budget_is_400_and_spends_nothing(lomas, budget) -> None:
    before = budget.remaining()
    response = lomas.post("/smartnoise_sql_query", json={**SQL, "epsilon": 1000.0})
    assert response.status_code == 400
    assert response.json()["InvalidQueryException"].startswith("Not enough budget for this query")
    assert budget.remaining() == before


def test_a_query_on_an_unknown_dataset_is_400_and_spends_nothing(lomas, budget) -> None:
    before = budget.remaining()
    response = lomas.post("/smartnoise_sql_query", json={**SQL, "dataset_name": "NO_SUCH_DATASET"})
    assert (response.status_code, response.json()) == (400, {"InvalidQueryException": (
        "Dataset NO_SUCH_DATASET does not exist. Please, verify the client object initialisation.")})
    assert budget.remaining() == before


def test_a_query_on_a_dataset_without_a_grant_is_403(target, lomas) -> None:
    """TITANIC is a demo dataset too, but the e2e user holds no grant on it."""
    response = lomas.post("/smartnoise_sql_query", json={**SQL, "dataset_name": "TITANIC"})
    assert (response.status_code, response.json()) == (403, {"UnauthorizedAccessException": (
        f"{target.user} does not have access to TITANIC.")})


def test_a_body_that_is_not_json_is_422_and_spends_nothing(lomas, budget) -> None:
    before = budget.remaining()
    response = lomas.post("/smartnoise_sql_query", content=b"{'query_str': SELECT",
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert budget.remaining() == before


def test_a_body_missing_fields_is_422_listing_them_and_spends_nothing(lomas, budget) -> None:
    before = budget.remaining()
    body = {key: value for key, value in SQL.items() if key not in ("delta", "mechanisms")}
    response = lomas.post("/smartnoise_sql_query", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "delta"], ["body", "mechanisms"]]
    assert budget.remaining() == before


def test_an_opendp_pipeline_that_is_no_measurement_is_400_and_spends_nothing(lomas, budget) -> None:
    """A bare transformation would release the exact statistic: it must never run."""
    pipeline = json.loads(examples.OPENDP_JSON)
    transformation = json.dumps({**pipeline, "ast": pipeline["ast"]["lhs"]})
    before = budget.remaining()
    response = lomas.post("/opendp_query", json={**examples.OPENDP_QUERY, "opendp_json": transformation})
    assert response.status_code == 400
    assert "not a measurement" in response.json()["InvalidQueryException"]
    assert budget.remaining() == before
