"""`/get_previous_queries`: the caller's Succeeded private queries on a dataset, read from the DPQuery objects.

The queries here are written directly as the operator would leave them (status through /status).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dpkube.api.wire import DUMMY_BODIES, QUERY_BODIES
from dpkube.k8s.client import KubeClient, core_path
from dpkube.models import examples
from dpkube.models.dpquery import Mode
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library

SQL_RESULT = {"index": [0], "columns": ["NB_ROW"], "data": [[346]], "index_names": [None], "column_names": [None]}


async def finished(admin: KubeClient, app, user: str, library: Library, body: dict[str, Any], *,
                   mode: Mode = Mode.QUERY, phase: str = "Succeeded", result: Any = SQL_RESULT,
                   spent: tuple[float, float] = (0.1, 1.5e-5), **status: Any) -> dict[str, Any]:
    """A DPQuery as the facade creates it, ended by the operator with `phase`."""
    model = (DUMMY_BODIES if mode == Mode.DUMMY else QUERY_BODIES)[library]
    manifest = app.state.lomas.queries.manifest(user, library, mode, model.model_validate(body))
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    await admin.create(DPQUERY.api_path(namespace), manifest)
    final = {"phase": phase, "spent": {"epsilon": spent[0], "delta": spent[1]}, **status}
    if result is not None:
        final["result"] = result
    path = DPQUERY.api_path(namespace, name)
    for _ in range(10):  # an operator running in this session may admit the query before our write: write again
        await admin.patch(path + "/status", {"status": final})
        await asyncio.sleep(0.05)
        query = await admin.get(path)
        if query["status"]["phase"] == phase:
            return query
    raise AssertionError(f"{name} did not keep phase {phase}")


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
