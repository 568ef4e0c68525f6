"""Private and dummy query routes: a DPQuery per request, in the caller's name, followed to its end.

Refusals decided at admission (budget, cost, payload) need only the operator; answers need the
node agent to run query pods (`needs_pods`).
"""

from __future__ import annotations

import json

import pytest

from dpkube.api.services.queries import CLIENT_INPUT_ANNOTATION, DATASET_LABEL, USER_LABEL, user_hash
from dpkube.api.settings import ApiSettings
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube.models.queue import DEFAULT_QUEUE
from dpkube_testing import builders

from .conftest import http_client, running_app

NOT_A_MEASUREMENT = "The pipeline provided is not a measurement. It cannot be processed in this server."
TRANSFORMATION_JSON = json.dumps({"version": "0.10.0", "ast": json.loads(examples.OPENDP_JSON)["ast"]["lhs"]})
SQL_AT_4 = {**examples.SMARTNOISE_SQL_QUERY, "epsilon": 4.0}


@pytest.fixture
def operator(operator_process) -> None:
    """The operator admits, rejects and charges; no query pod runs without the node agent."""


@pytest.fixture
def platform(operator_process, node_agent) -> None:
    """The operator and the node agent: query pods run."""


async def dpqueries(admin: KubeClient, namespace: str) -> list[dict]:
    return (await admin.list(DPQUERY.api_path(namespace)))["items"]


async def test_a_query_is_a_dpquery_in_the_callers_name_with_its_body_kept(
        operator, http, caller, admin, namespace) -> None:
    await http.post("/opendp_query", json={**examples.OPENDP_QUERY, "opendp_json": TRANSFORMATION_JSON},
                    headers=caller.headers)
    [query] = await dpqueries(admin, namespace)
    assert query["spec"]["user"] == caller.name
    assert query["spec"]["mode"] == "query"
    assert query["metadata"]["labels"][USER_LABEL] == user_hash(caller.name)
    assert query["metadata"]["labels"][DATASET_LABEL] == "penguin"
    assert json.loads(query["metadata"]["annotations"][CLIENT_INPUT_ANNOTATION]) == {
        **examples.OPENDP_QUERY, "opendp_json": TRANSFORMATION_JSON}


async def test_a_private_query_runs_through_the_facades_queue_when_one_is_set(
        platform, settings: ApiSettings, admin, caller, namespace, engine_pool) -> None:
    async for app in running_app(settings.model_copy(update={"lomas_queue": DEFAULT_QUEUE}), admin, engine_pool):
        async with http_client(app) as http:
            response = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                                       headers=caller.headers)
    assert response.status_code == 200, response.text
    [query] = await dpqueries(admin, namespace)
    assert query["spec"]["queue"] == DEFAULT_QUEUE
    assert query["status"]["queueSerial"] >= 1


async def submitted_queue(settings: ApiSettings, admin: KubeClient, caller, namespace: str, engine_pool,
                          route: str, body: dict) -> str | None:
    """The `spec.queue` of the DPQuery a facade with these settings creates for one request (answered at once)."""
    async for app in running_app(settings, admin, engine_pool):
        async with http_client(app) as http:
            response = await http.post(route, json=body, headers={**caller.headers, "Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    [query] = await dpqueries(admin, namespace)
    return query["spec"].get("queue")


async def test_a_query_of_a_library_the_default_queue_warms_goes_through_it(
        settings: ApiSettings, admin, caller, namespace, engine_pool) -> None:
    queue = await submitted_queue(settings.model_copy(update={"lomas_queue": DEFAULT_QUEUE}), admin, caller,
                                  namespace, engine_pool, "/smartnoise_sql_query", examples.SMARTNOISE_SQL_QUERY)
    assert queue == DEFAULT_QUEUE


async def test_a_synthetic_data_query_goes_through_no_queue_as_the_default_queue_does_not_warm_it(
        settings: ApiSettings, admin, caller, namespace, engine_pool) -> None:
    queue = await submitted_queue(settings.model_copy(update={"lomas_queue": DEFAULT_QUEUE}), admin, caller,
                                  namespace, engine_pool, "/smartnoise_synth_query", examples.SMARTNOISE_SYNTH_QUERY)
    assert queue is None


async def test_a_query_goes_through_no_queue_when_the_lomas_queue_does_not_exist(
        settings: ApiSettings, admin, caller, namespace, engine_pool) -> None:
    queue = await submitted_queue(settings.model_copy(update={"lomas_queue": "no-such-queue"}), admin, caller,
                                  namespace, engine_pool, "/smartnoise_sql_query", examples.SMARTNOISE_SQL_QUERY)
    assert queue is None


async def test_a_query_over_the_remaining_budget_is_400_with_lomas_message(operator, http, new_caller) -> None:
    caller = await new_caller({"PENGUIN": (2.0, 0.005)})
    response = await http.post("/smartnoise_sql_query", json=SQL_AT_4, headers=caller.headers)
    assert response.status_code == 400
    assert response.json() == {
        "InvalidQueryException": "Not enough budget for this query epsilon remaining 2.0, delta remaining 0.005."}


async def test_a_budget_refusal_is_counted_in_metrics(operator, http, new_caller) -> None:
    caller = await new_caller({"PENGUIN": (2.0, 0.005)})
    await http.post("/smartnoise_sql_query", json=SQL_AT_4, headers=caller.headers)
    text = (await http.get("/metrics")).text
    assert 'dpkube_api_budget_refusals_total{reason="InsufficientBudget"} 1.0' in text


async def test_a_query_the_library_refuses_at_costing_is_422_and_charges_nothing(operator, http, caller) -> None:
    response = await http.post("/smartnoise_sql_query", json={**examples.SMARTNOISE_SQL_QUERY, "epsilon": 1e-9},
                               headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["library"] == "smartnoise_sql"
    assert response.json()["ExternalLibraryException"].startswith("Error obtaining cost: Noise scale is too large")
    spent = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert spent.json() == {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0}


async def test_an_opendp_transformation_query_is_400_not_a_measurement(operator, http, caller) -> None:
    response = await http.post("/opendp_query", json={**examples.OPENDP_QUERY, "opendp_json": TRANSFORMATION_JSON},
                               headers=caller.headers)
    assert (response.status_code, response.json()) == (400, {"InvalidQueryException": NOT_A_MEASUREMENT})


async def test_a_query_on_a_dataset_without_a_grant_is_403_and_creates_nothing(http, caller, admin,
                                                                                namespace) -> None:
    response = await http.post("/smartnoise_sql_query", json={**examples.SMARTNOISE_SQL_QUERY,
                                                              "dataset_name": "TITANIC"}, headers=caller.headers)
    assert response.status_code == 403
    assert response.json() == {"UnauthorizedAccessException": f"{caller.name} does not have access to TITANIC."}
    assert await dpqueries(admin, namespace) == []


async def test_a_query_on_an_unknown_dataset_is_400(http, caller) -> None:
    response = await http.post("/smartnoise_sql_query", json={**examples.SMARTNOISE_SQL_QUERY, "dataset_name": "NOPE"},
                               headers=caller.headers)
    assert response.status_code == 400


async def test_a_query_without_delta_and_mechanisms_is_422_listing_both(http, caller) -> None:
    body = {k: v for k, v in examples.SMARTNOISE_SQL_QUERY.items() if k not in ("delta", "mechanisms")}
    response = await http.post("/smartnoise_sql_query", json=body, headers=caller.headers)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "delta"], ["body", "mechanisms"]]


async def test_a_query_unfinished_within_the_wait_is_504_naming_the_query(settings: ApiSettings, admin, caller,
                                                                         namespace, engine_pool) -> None:
    held = f"held-{namespace}"  # the Lomas queue is locked: the query waits, whether or not an operator runs
    await admin.create(QUEUE.api_path(settings.system_namespace), builders.queue(held, locked=True))
    waiting = settings.model_copy(update={"query_wait_seconds": 0.5, "lomas_queue": held})
    async for app in running_app(waiting, admin, engine_pool):
        async with http_client(app) as http:
            response = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                                       headers=caller.headers)
    assert response.status_code == 504
    [query] = await dpqueries(admin, namespace)
    assert response.json()["name"] == query["metadata"]["name"]
    assert "still" in response.json()["QueryStillRunningException"]


@pytest.mark.slow
async def test_a_private_sql_query_answers_and_charges_the_callers_budget(platform, http, caller) -> None:
    response = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY, headers=caller.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requested_by"] == caller.name
    assert body["query_response"]["columns"] == ["NB_ROW"]
    assert body["query_response"]["data"][0][0] > 0
    assert body["spent_epsilon"] == pytest.approx(0.1)
    assert body["spent_delta"] >= 1e-5
    spent = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert spent.json() == {"total_spent_epsilon": body["spent_epsilon"], "total_spent_delta": body["spent_delta"]}


@pytest.mark.slow
async def test_a_private_query_is_listed_by_previous_queries_as_sent_and_answered(platform, http, caller) -> None:
    reply = (await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                             headers=caller.headers)).json()
    response = await http.post("/get_previous_queries", json=examples.GET_DB_DATA, headers=caller.headers)
    [record] = response.json()["previous_queries"]
    assert record["client_input"] == examples.SMARTNOISE_SQL_QUERY
    assert record["response"] == reply


@pytest.mark.slow
async def test_subsequent_queries_stop_at_the_budget_limit(platform, http, caller) -> None:
    for _ in range(2):
        assert (await http.post("/smartnoise_sql_query", json=SQL_AT_4, headers=caller.headers)).status_code == 200
    third = await http.post("/smartnoise_sql_query", json=SQL_AT_4, headers=caller.headers)
    assert third.status_code == 400
    assert "2.0" in third.json()["InvalidQueryException"]
    assert "0.004970000100000034" in third.json()["InvalidQueryException"]


@pytest.mark.slow
async def test_a_dummy_query_answers_with_its_cost_and_charges_nothing(platform, http, caller) -> None:
    response = await http.post("/dummy_smartnoise_sql_query",
                               json={**examples.SMARTNOISE_SQL_QUERY, **examples.DUMMY}, headers=caller.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"query_response", "epsilon", "delta"}
    assert 0 < body["query_response"]["data"][0][0] < 250
    assert body["epsilon"] == pytest.approx(0.1)
    spent = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert spent.json() == {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0}


@pytest.mark.slow
@pytest.mark.parametrize("route,body", [
    ("/opendp_query", examples.OPENDP_QUERY),
    ("/diffprivlib_query", examples.DIFFPRIVLIB_QUERY),
])
async def test_each_library_answers_its_seed_example(platform, http, caller, route, body) -> None:
    response = await http.post(route, json=body, headers=caller.headers)
    assert response.status_code == 200, response.text
    assert response.json()["spent_epsilon"] > 0
