"""Queries submitted without waiting (`Prefer: respond-async`) and followed by name: 202 with their progress
(phase, queue position, elapsed time) while they run, then what their Lomas route answers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from dpkube.api.settings import ApiSettings
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube_testing.builders import queue

from .conftest import http_client, running_app

ASYNC = {"Prefer": "respond-async"}


async def followed(http: httpx.AsyncClient, caller, location: str, seconds: float = 150) -> httpx.Response:
    """Poll `location` until it stops answering 202."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await http.get(location, headers=caller.headers)
        if response.status_code != 202 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.2)


async def progress_until(http: httpx.AsyncClient, caller, locations: list[str], check,
                         seconds: float = 30) -> list[dict]:
    """Poll every location until their progresses, together, satisfy `check`."""
    deadline = asyncio.get_running_loop().time() + seconds
    bodies: list[dict] = []
    while asyncio.get_running_loop().time() < deadline:
        bodies = [(await http.get(location, headers=caller.headers)).json() for location in locations]
        if check(bodies):
            return bodies
        await asyncio.sleep(0.1)
    raise AssertionError(f"progress {bodies}")


async def test_a_query_submitted_with_respond_async_is_202_with_where_to_follow_it(http, caller, admin,
                                                                                    namespace) -> None:
    response = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                               headers={**caller.headers, **ASYNC})
    [query] = (await admin.list(DPQUERY.api_path(namespace)))["items"]
    assert response.status_code == 202
    assert response.headers["Location"] == f"/queries/{query['metadata']['name']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert response.json()["name"] == query["metadata"]["name"]
    assert response.json()["phase"] == "Pending"


@pytest.mark.slow
async def test_a_followed_query_answers_its_lomas_body_and_charges_once(operator_process, node_agent, http,
                                                                         caller) -> None:
    submitted = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                                headers={**caller.headers, **ASYNC})
    answer = await followed(http, caller, submitted.headers["Location"])
    again = await http.get(submitted.headers["Location"], headers=caller.headers)
    spent = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["requested_by"] == caller.name
    assert answer.json()["query_response"]["columns"] == ["NB_ROW"]
    assert answer.json()["spent_epsilon"] == pytest.approx(0.1)
    assert again.json() == answer.json()
    assert spent.json()["total_spent_epsilon"] == pytest.approx(0.1)


async def test_queries_waiting_in_a_locked_queue_show_their_places_and_why(
        operator_process, settings: ApiSettings, admin: KubeClient, system_namespace: str, caller,
        engine_pool) -> None:
    line = f"locked-{caller.name}"
    await admin.create(QUEUE.api_path(system_namespace), queue(line, locked=True))
    try:
        async for app in running_app(settings.model_copy(update={"lomas_queue": line}), admin, engine_pool):
            async with http_client(app) as http:
                locations = [(await http.post("/dummy_smartnoise_sql_query", headers={**caller.headers, **ASYNC},
                                              json={**examples.SMARTNOISE_SQL_QUERY, **examples.DUMMY}))
                             .headers["Location"] for _ in range(2)]
                placed = await progress_until(http, caller, locations,
                                              lambda bodies: sorted(b["queue_position"] or 0 for b in bodies) == [1, 2])
    finally:
        await admin.delete(QUEUE.api_path(system_namespace, line))
    assert {(p["phase"], p["message"]) for p in placed} == {("Pending", f"queue {line} is locked")}
    assert all(p["elapsed_seconds"] > 0 for p in placed)


async def test_another_users_query_is_not_found(http, caller, new_caller) -> None:
    other = await new_caller()
    submitted = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                                headers={**caller.headers, **ASYNC})
    response = await http.get(submitted.headers["Location"], headers=other.headers)
    name = submitted.json()["name"]
    assert (response.status_code, response.json()) == (404, {"InvalidQueryException": f"Query {name} does not exist."})


async def test_a_name_that_cannot_be_a_query_is_refused_before_any_read(http, caller) -> None:
    response = await http.get("/queries/Not_A_Name", headers=caller.headers)
    assert response.status_code == 422


async def test_a_refused_submission_is_answered_at_once_and_creates_nothing(http, caller, admin, namespace) -> None:
    response = await http.post("/smartnoise_sql_query", headers={**caller.headers, **ASYNC},
                               json={**examples.SMARTNOISE_SQL_QUERY, "dataset_name": "NOPE"})
    assert response.status_code == 400
    assert (await admin.list(DPQUERY.api_path(namespace)))["items"] == []
