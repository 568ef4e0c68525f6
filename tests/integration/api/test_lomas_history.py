"""`/get_previous_queries`: the caller's Succeeded private queries on a dataset, read from the DPQuery objects.

The queries here are refused by the operator, then written directly as the operator would leave them (status
through /status); the facade serves them from its watch-fed view, so a helper waits for that view to catch up.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from dpkube.api.services.queries import Queries
from dpkube.api.wire import DUMMY_BODIES, QUERY_BODIES
from dpkube.k8s.client import KubeClient, core_path
from dpkube.models import examples
from dpkube.models.dpquery import SUBMITTED_AT_ANNOTATION, Mode
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library

from .conftest import http_client, running_app

SQL_RESULT = {"index": [0], "columns": ["NB_ROW"], "data": [[346]], "index_names": [None], "column_names": [None]}
SUCCEEDED = {"phase": "Succeeded", "spent": {"epsilon": 0.1, "delta": 1.5e-5}, "result": SQL_RESULT}
OTHERS = 550
"""Other users' and other datasets' queries stored beside the caller's: more than one page of the feed's list."""
MISSING_EXPERIMENT = "no-such-experiment"

pytestmark = pytest.mark.usefixtures("operator_process")
"""The operator refuses each query written here (`left_alone`) before the test ends it as it wants."""


async def caught_up(app, query: dict[str, Any], seconds: float = 10.0) -> None:
    """Wait until the facade's view of DPQueries has seen `query`'s version (its watch lags the API server)."""
    view = app.state.lomas.history.view
    deadline = time.monotonic() + seconds
    while view.version < int(query["metadata"]["resourceVersion"]):
        assert time.monotonic() < deadline, "the facade's view did not catch up"
        await asyncio.sleep(0.01)


def left_alone(manifest: dict[str, Any]) -> dict[str, Any]:
    """The query names a missing experiment, so the operator refuses it before pricing or reserving anything, and
    holds no finalizer, so once ended the operator never writes it again."""
    manifest["metadata"]["finalizers"] = []
    manifest["spec"]["experiment"] = MISSING_EXPERIMENT
    return manifest


async def ended(admin: KubeClient, namespace: str, manifests: list[dict[str, Any]], status: dict[str, Any]) -> None:
    """Create the queries, wait until the operator has refused each, then write `status` on each, whole."""
    path = DPQUERY.api_path(namespace)
    names = {m["metadata"]["name"] for m in manifests}
    semaphore = asyncio.Semaphore(16)

    async def create(manifest: dict[str, Any]) -> None:
        async with semaphore:
            await admin.create(path, manifest)

    async def end(name: str) -> None:
        async with semaphore:
            await admin.patch(f"{path}/{name}/status", [{"op": "add", "path": "/status", "value": status}],
                              kind="json")

    await asyncio.gather(*(create(m) for m in manifests))
    deadline = time.monotonic() + 120
    while {q["metadata"]["name"] for q in await admin.list_all(path)
           if q["metadata"]["name"] in names and (q.get("status") or {}).get("phase") == "Rejected"} != names:
        assert time.monotonic() < deadline, "the operator did not refuse every query"
        await asyncio.sleep(0.1)
    await asyncio.gather(*(end(name) for name in names))


async def finished(admin: KubeClient, app, user: str, library: Library, body: dict[str, Any], *,
                   mode: Mode = Mode.QUERY, phase: str = "Succeeded", result: Any = SQL_RESULT,
                   spent: tuple[float, float] = (0.1, 1.5e-5), **status: Any) -> dict[str, Any]:
    """A DPQuery as the facade creates it, ended with `phase`, once the facade's view has seen it."""
    model = (DUMMY_BODIES if mode == Mode.DUMMY else QUERY_BODIES)[library]
    manifest = left_alone(app.state.lomas.queries.manifest(user, library, mode, model.model_validate(body)))
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    final = {"phase": phase, "spent": {"epsilon": spent[0], "delta": spent[1]}, **status}
    if result is not None:
        final["result"] = result
    await ended(admin, namespace, [manifest], final)
    query = await admin.get(DPQUERY.api_path(namespace, name))
    await caught_up(app, query)
    return query


def stored(user: str, dataset: str, submitted_at: float, epsilon: float = 0.1, namespace: str = "") -> dict[str, Any]:
    """A DPQuery as the facade creates it, submitted at `submitted_at`."""
    maker = Queries(client=None, namespace=namespace, datasets=None, budgets=None, wait_seconds=1)  # type: ignore[arg-type]
    body = QUERY_BODIES[Library.SMARTNOISE_SQL].model_validate(
        {**examples.SMARTNOISE_SQL_QUERY, "dataset_name": dataset, "epsilon": epsilon})
    manifest = maker.manifest(user, Library.SMARTNOISE_SQL, Mode.QUERY, body)
    manifest["metadata"]["annotations"][SUBMITTED_AT_ANNOTATION] = repr(submitted_at)
    return left_alone(manifest)


async def previous(http, caller) -> list[dict[str, Any]]:
    response = await http.post("/get_previous_queries", json=examples.GET_DB_DATA, headers=caller.headers)
    assert response.status_code == 200
    return response.json()["previous_queries"]


async def test_no_queries_yet_is_an_empty_list(http, caller) -> None:
    assert await previous(http, caller) == []


async def test_a_succeeded_query_is_an_archive_record_with_the_body_sent_and_the_reply(
        http, caller, admin, app) -> None:
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY)
    [record] = await previous(http, caller)
    assert record["user_name"] == caller.name
    assert record["dataset_name"] == "PENGUIN"
    assert record["dp_librairy"] == "smartnoise_sql"
    assert record["client_input"] == examples.SMARTNOISE_SQL_QUERY
    assert record["response"] == {"requested_by": caller.name, "query_response": SQL_RESULT,
                                  "spent_epsilon": 0.1, "spent_delta": 1.5e-5}
    assert isinstance(record["timestamp"], float)


async def test_records_follow_submission_order(http, caller, admin, app) -> None:
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY)
    await finished(admin, app, caller.name, Library.OPENDP, examples.OPENDP_QUERY, result=2.5)
    records = await previous(http, caller)
    assert [r["dp_librairy"] for r in records] == ["smartnoise_sql", "opendp"]
    assert records[1]["client_input"] == examples.OPENDP_QUERY


async def test_failed_rejected_and_dummy_queries_are_not_listed(http, caller, admin, app) -> None:
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY, phase="Failed",
                   result=None)
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY,
                   phase="Rejected", result=None)
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, {**examples.SMARTNOISE_SQL_QUERY, **examples.DUMMY},
                   mode=Mode.DUMMY, spent=(0.0, 0.0))
    assert await previous(http, caller) == []


async def test_another_users_queries_are_not_listed(http, caller, new_caller, admin, app) -> None:
    other = await new_caller()
    await finished(admin, app, other.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY)
    assert await previous(http, caller) == []


async def test_a_result_kept_in_configmaps_is_reassembled(http, caller, admin, app, namespace) -> None:
    text = json.dumps(SQL_RESULT)
    for index, piece in enumerate((text[:20], text[20:])):
        await admin.create(core_path("configmaps", namespace), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big" if index == 0 else f"big-{index}"},
            "data": {"result.json": piece}})
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY, result=None,
                   resultRef={"configMap": "big", "key": "result.json", "chunks": 2})
    [record] = await previous(http, caller)
    assert record["response"]["query_response"] == SQL_RESULT


async def test_previous_queries_on_a_dataset_without_a_grant_is_403(http, caller) -> None:
    response = await http.post("/get_previous_queries", json={"dataset_name": "TITANIC"}, headers=caller.headers)
    assert response.status_code == 403


async def test_only_the_callers_records_are_listed_in_submission_order_among_many_others(
        settings, admin, namespace, caller, engine_pool) -> None:
    others = [stored(f"other-{n % 50}", ("PENGUIN", "TITANIC")[n % 2], 1000.0 + n, namespace=namespace)
              for n in range(OTHERS)]
    mine = [stored(caller.name, "PENGUIN", at, epsilon, namespace) for at, epsilon in
            ((3000.0, 0.3), (1000.5, 0.1), (2000.0, 0.2))]
    mine_elsewhere = stored(caller.name, "TITANIC", 1500.0, namespace=namespace)
    await ended(admin, namespace, [*mine, *others, mine_elsewhere], SUCCEEDED)
    async for app in running_app(settings, admin, engine_pool):
        async with http_client(app) as http:
            records = await previous(http, caller)
    assert [(r["timestamp"], r["client_input"]["epsilon"]) for r in records] == [
        (1000.5, 0.1), (2000.0, 0.2), (3000.0, 0.3)]
    assert {(r["user_name"], r["dataset_name"]) for r in records} == {(caller.name, "PENGUIN")}


async def test_while_the_view_is_not_synced_records_are_listed_from_the_api_server(http, caller, admin, app) -> None:
    await finished(admin, app, caller.name, Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY)
    await app.state.lomas.history.view.stop()
    [record] = await previous(http, caller)
    assert record["response"]["query_response"] == SQL_RESULT


@pytest.mark.slow
async def test_a_query_finished_a_moment_ago_is_in_the_callers_next_read_among_many_others(
        node_agent, app, http, caller, admin, namespace) -> None:
    older = stored(caller.name, "PENGUIN", 1000.0, namespace=namespace)
    others = [stored(f"other-{n % 50}", "PENGUIN", time.time(), namespace=namespace) for n in range(OTHERS)]
    await ended(admin, namespace, [older, *others], SUCCEEDED)
    await caught_up(app, await admin.get(DPQUERY.api_path(namespace, older["metadata"]["name"])))
    replies = []
    for _ in range(2):
        reply = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY, headers=caller.headers)
        assert reply.status_code == 200, reply.text
        replies.append(reply.json())
        records = await previous(http, caller)
        assert [r["response"] for r in records[1:]] == replies
    assert records[0]["timestamp"] == 1000.0
