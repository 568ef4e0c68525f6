"""Cost routes: the library's own cost, computed in-process from the metadata, without a pod or a charge."""

from __future__ import annotations

import json

import pytest

from dpkube.models import examples

from .conftest import CountingClient

NOT_A_MEASUREMENT = "The pipeline provided is not a measurement. It cannot be processed in this server."
TRANSFORMATION_JSON = json.dumps({"version": "0.10.0", "ast": json.loads(examples.OPENDP_JSON)["ast"]["lhs"]})
"""The seed's OpenDP pipeline without its final Laplace measurement."""


async def test_smartnoise_sql_cost_of_the_seed_example(http, caller) -> None:
    response = await http.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST,
                               headers=caller.headers)
    assert response.status_code == 200
    assert response.json()["epsilon_cost"] == pytest.approx(0.1)
    assert response.json()["delta_cost"] > 1e-5


async def test_opendp_cost_of_the_seed_example(http, caller) -> None:
    response = await http.post("/estimate_opendp_cost", json=examples.OPENDP_COST, headers=caller.headers)
    assert response.status_code == 200
    assert response.json()["epsilon_cost"] > 0.1
    assert response.json()["delta_cost"] == 0


async def test_diffprivlib_cost_of_the_seed_example(http, caller) -> None:
    response = await http.post("/estimate_diffprivlib_cost", json=examples.DIFFPRIVLIB_COST, headers=caller.headers)
    assert (response.status_code, response.json()) == (200, {"epsilon_cost": 1.5, "delta_cost": 0.0})


@pytest.mark.slow
async def test_smartnoise_synth_cost_of_the_seed_example(http, caller) -> None:
    response = await http.post("/estimate_smartnoise_synth_cost", json=examples.SMARTNOISE_SYNTH_COST,
                               headers=caller.headers)
    assert response.status_code == 200
    assert response.json()["epsilon_cost"] >= 0.1
    assert response.json()["delta_cost"] >= 1e-5


async def test_a_cost_estimate_charges_nothing(http, caller) -> None:
    await http.post("/estimate_diffprivlib_cost", json=examples.DIFFPRIVLIB_COST, headers=caller.headers)
    response = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert response.json() == {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0}


async def test_a_cost_the_library_cannot_compute_is_422_naming_the_library(http, caller) -> None:
    body = {**examples.SMARTNOISE_SQL_COST, "query_str": "SELECT AVG(bill) FROM df"}
    response = await http.post("/estimate_smartnoise_sql_cost", json=body, headers=caller.headers)
    assert response.status_code == 422
    assert response.json() == {"ExternalLibraryException": "Error obtaining cost: Column cannot be found bill",
                               "library": "smartnoise_sql"}


async def test_an_opendp_transformation_is_400_not_a_measurement(http, caller) -> None:
    body = {**examples.OPENDP_COST, "opendp_json": TRANSFORMATION_JSON}
    response = await http.post("/estimate_opendp_cost", json=body, headers=caller.headers)
    assert (response.status_code, response.json()) == (400, {"InvalidQueryException": NOT_A_MEASUREMENT})


async def test_a_cost_on_a_dataset_without_a_grant_is_403(http, caller) -> None:
    response = await http.post("/estimate_opendp_cost", json={**examples.OPENDP_COST, "dataset_name": "TITANIC"},
                               headers=caller.headers)
    assert response.status_code == 403


async def test_a_cost_on_an_unknown_dataset_is_400(http, caller) -> None:
    response = await http.post("/estimate_opendp_cost", json={**examples.OPENDP_COST, "dataset_name": "NOPE"},
                               headers=caller.headers)
    assert response.status_code == 400


async def test_a_sql_request_without_delta_and_mechanisms_is_422_listing_both_in_order(http, caller) -> None:
    body = {k: v for k, v in examples.SMARTNOISE_SQL_COST.items() if k not in ("delta", "mechanisms")}
    response = await http.post("/estimate_smartnoise_sql_cost", json=body, headers=caller.headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(e["type"], e["loc"]) for e in detail] == [("missing", ["body", "delta"]),
                                                        ("missing", ["body", "mechanisms"])]


async def test_a_cost_estimate_is_answered_without_writing_to_the_api_server(
        counted_http, counting: CountingClient, caller) -> None:
    before = len(counting.calls)
    response = await counted_http.post("/estimate_opendp_cost", json=examples.OPENDP_COST, headers=caller.headers)
    assert response.status_code == 200
    assert [call for call in counting.calls[before:] if call.method != "GET"] == []
