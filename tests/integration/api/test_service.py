"""Service qualities: error shapes, body limit, health, metrics, OpenAPI examples, statelessness."""

from __future__ import annotations

import logging

from dpkube.api.logs import JsonFormatter
from dpkube.api.settings import ApiSettings
from dpkube.models import examples

from .conftest import http_client, running_app


async def test_a_body_over_the_limit_is_413(settings: ApiSettings, admin, caller, engine_pool) -> None:
    async for app in running_app(settings.model_copy(update={"max_body_bytes": 1000}), admin, engine_pool):
        async with http_client(app) as http:
            response = await http.post("/estimate_opendp_cost", json=examples.OPENDP_COST, headers=caller.headers)
    assert response.status_code == 413
    assert list(response.json()) == ["InvalidQueryException"]


async def test_malformed_json_is_422_not_500(http, caller) -> None:
    response = await http.post("/get_initial_budget", content=b"{not json", headers={
        **caller.headers, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_a_wrongly_typed_field_is_422_in_fastapi_shape(http, caller) -> None:
    response = await http.post("/estimate_smartnoise_sql_cost", json={**examples.SMARTNOISE_SQL_COST, "epsilon": "x"},
                               headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "epsilon"]


async def test_extra_body_fields_are_ignored_as_lomas_does(http, caller) -> None:
    response = await http.post("/get_initial_budget", json={**examples.GET_DB_DATA, "extra": 1},
                               headers=caller.headers)
    assert response.status_code == 200


async def test_healthz_answers_ok(http) -> None:
    assert (await http.get("/healthz")).status_code == 200


async def test_readyz_is_ready_once_the_caches_synced(http) -> None:
    response = await http.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_metrics_count_requests_by_route_template(http, caller) -> None:
    await http.post("/get_initial_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    text = (await http.get("/metrics")).text
    assert 'dpkube_api_requests_total{method="POST",route="/get_initial_budget",status="200"} 1.0' in text
    assert "dpkube_api_request_seconds_bucket" in text


async def test_openapi_has_every_lomas_route_with_the_seed_examples(http) -> None:
    spec = (await http.get("/openapi.json")).json()
    libraries = ["smartnoise_sql", "smartnoise_synth", "opendp", "diffprivlib"]
    routes = {f"/{lib}_query" for lib in libraries} | {f"/dummy_{lib}_query" for lib in libraries} | {
        f"/estimate_{lib}_cost" for lib in libraries} | {
        "/state", "/get_dataset_metadata", "/get_dummy_dataset", "/get_initial_budget", "/get_total_spent_budget",
        "/get_remaining_budget", "/get_previous_queries"}
    assert routes <= set(spec["paths"])
    body = spec["paths"]["/smartnoise_sql_query"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["PENGUIN"]["value"] == examples.SMARTNOISE_SQL_QUERY


async def test_docs_are_served(http) -> None:
    assert (await http.get("/docs")).status_code == 200


async def test_two_instances_give_the_same_answers(settings: ApiSettings, admin, caller, engine_pool) -> None:
    answers = []
    for _ in range(2):
        async for app in running_app(settings, admin, engine_pool):
            async with http_client(app) as http:
                answers.append([(await http.post(route, json=examples.GET_DB_DATA, headers=caller.headers)).json()
                                for route in ("/get_initial_budget", "/get_remaining_budget",
                                              "/get_previous_queries")])
    assert answers[0] == answers[1]


async def test_logs_hold_neither_tokens_nor_request_bodies(http, caller, caplog) -> None:
    caplog.set_level(logging.INFO, logger="dpkube.api")
    await http.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST, headers=caller.headers)
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any('"route": "/estimate_smartnoise_sql_cost"' in line for line in lines)
    assert not any(caller.token in line or "SELECT" in line for line in lines)
