"""Per-user limits, answered 429 with Retry-After in the caller's protocol, and the dummy-data row cap."""

from __future__ import annotations

import asyncio
import uuid

from dpkube.api.services.dioptra.jobs import NAME_PREFIX
from dpkube.api.services.dioptra.records import ORIGIN_LABEL
from dpkube.api.services.queries import USER_LABEL, user_hash
from dpkube.api.services.quotas import IN_FLIGHT_INDEX
from dpkube.api.settings import ApiSettings
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY
from dpkube_testing import builders
from dpkube_testing.dioptra import wait_for_status, workflow

from .conftest import http_client, running_app

API = "/api/v0"
BUDGET = "/get_remaining_budget"


async def test_requests_past_the_burst_get_429_with_retry_after_in_the_lomas_shape(settings, admin, caller,
                                                                                   engine_pool) -> None:
    limited = settings.model_copy(update={"requests_per_second": 0.5, "request_burst": 2})
    async for app in running_app(limited, admin, engine_pool):
        async with http_client(app) as http:
            answers = [await http.post(BUDGET, json=examples.GET_DB_DATA, headers=caller.headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "2"
    assert answers[2].json() == {"InvalidQueryException": "Too many requests: more than 0.5 requests per second. "
                                                          "Retry after 2 s."}


async def test_requests_past_the_burst_get_429_in_the_dioptra_shape(settings, admin, caller, engine_pool) -> None:
    limited = settings.model_copy(update={"requests_per_second": 0.5, "request_burst": 1})
    async for app in running_app(limited, admin, engine_pool):
        async with http_client(app) as http:
            await http.get(f"{API}/experiment/", headers=caller.basic)
            refused = await http.get(f"{API}/experiment/", headers=caller.basic)
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "2")
    assert refused.json()["message"].startswith("Too Many Requests - more than 0.5 requests per second.")


async def test_one_users_burst_leaves_another_user_served(settings, admin, caller, new_caller, engine_pool) -> None:
    other = await new_caller()
    limited = settings.model_copy(update={"requests_per_second": 0.1, "request_burst": 1})
    async for app in running_app(limited, admin, engine_pool):
        async with http_client(app) as http:
            for _ in range(3):
                await http.post(BUDGET, json=examples.GET_DB_DATA, headers=caller.headers)
            served = await http.post(BUDGET, json=examples.GET_DB_DATA, headers=other.headers)
    assert served.status_code == 200


async def test_a_dummy_dataset_over_the_row_cap_is_400_in_the_lomas_shape(settings, admin, caller,
                                                                          engine_pool) -> None:
    capped = settings.model_copy(update={"max_dummy_rows": 50})
    async for app in running_app(capped, admin, engine_pool):
        async with http_client(app) as http:
            refused = await http.post("/get_dummy_dataset", headers=caller.headers,
                                      json={**examples.GET_DUMMY_DATASET, "dummy_nb_rows": 51})
            served = await http.post("/get_dummy_dataset", headers=caller.headers,
                                     json={**examples.GET_DUMMY_DATASET, "dummy_nb_rows": 50})
    assert (refused.status_code, refused.json()) == (
        400, {"InvalidQueryException": "dummy_nb_rows must be at most 50, got 51."})
    assert len(served.json()["dummy_dict"]) == 50


def unfinished_query(user: str) -> dict:
    """A DPQuery of `user` as the facade labels them, in a queue that does not exist: it waits unfinished,
    whether or not an operator runs."""
    body = builders.dpquery(f"q-{uuid.uuid4().hex[:8]}", user=user, queue=f"absent-{uuid.uuid4().hex[:8]}")
    body["metadata"]["labels"] = {USER_LABEL: user_hash(user)}
    return body


async def test_a_query_past_the_users_unfinished_limit_is_429_and_creates_nothing(
        settings: ApiSettings, admin: KubeClient, namespace: str, caller, engine_pool) -> None:
    for _ in range(2):
        await admin.create(DPQUERY.api_path(namespace), unfinished_query(caller.name))
    async for app in running_app(settings.model_copy(update={"max_queries_in_flight": 2}), admin, engine_pool):
        async with http_client(app) as http:
            refused = await http.post("/dummy_smartnoise_sql_query", headers=caller.headers,
                                      json={**examples.SMARTNOISE_SQL_QUERY, **examples.DUMMY})
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "2")
    assert refused.json() == {"InvalidQueryException": "Too many requests: 2 of your queries are unfinished, the "
                                                       "most allowed is 2. Retry after 2 s."}
    assert len((await admin.list(DPQUERY.api_path(namespace)))["items"]) == 2


async def register(http, caller, admin_caller) -> tuple[str, str]:
    queue = await http.post(f"{API}/queue/", json={"name": f"q_{uuid.uuid4().hex[:8]}"}, headers=admin_caller.basic)
    experiment = await http.post(f"{API}/experiment/", json={"name": "limits"}, headers=caller.basic)
    return experiment.json()["name"], queue.json()["name"]


def job_form(experiment: str, queue: str, **fields: str) -> dict:
    return {"data": {"experimentName": experiment, "queue": queue, "entryPoint": "penguin_count", **fields},
            "files": {"workflow": ("workflow.tar.gz", workflow())}}


async def unfinished_job(admin: KubeClient, namespace: str, user: str) -> str:
    """The id of a Dioptra job of `user` that waits unfinished (see `unfinished_query`), whether or not an
    operator runs: jobs that depend on it wait too."""
    job_id = str(uuid.uuid4())
    body = unfinished_query(user)
    body["metadata"] |= {"name": f"{NAME_PREFIX}{job_id}", "labels": {**body["metadata"]["labels"],
                                                                      ORIGIN_LABEL: "dioptra"}}
    await admin.create(DPQUERY.api_path(namespace), body)
    return job_id


async def until(condition, *args, seconds: float = 10.0) -> None:
    """Wait for `condition(*args)`: a facade's watch-fed view catches up with the API server."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition(*args):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def holds(view, user: str, count: int) -> bool:
    return len(view.indexed(IN_FLIGHT_INDEX, user)) == count


def lacks(view, user: str, name: str) -> bool:
    return name not in view.indexed(IN_FLIGHT_INDEX, user)


async def test_unfinished_jobs_are_counted_across_replicas(settings: ApiSettings, admin: KubeClient, namespace: str,
                                                           caller, new_caller, engine_pool) -> None:
    admin_caller = await new_caller(admin_user=True)
    limited = settings.model_copy(update={"max_queries_in_flight": 3})
    held = {"dependsOn": await unfinished_job(admin, namespace, caller.name)}  # the jobs wait for it, unfinished
    async for app_a in running_app(limited, admin, engine_pool):
        async for app_b in running_app(limited, admin, engine_pool):
            async with http_client(app_a) as replica_a, http_client(app_b) as replica_b:
                experiment, queue = await register(replica_a, caller, admin_caller)
                first = await replica_a.post(f"{API}/job/", headers=caller.basic, **job_form(experiment, queue, **held))
                second = await replica_b.post(f"{API}/job/", headers=caller.basic,
                                              **job_form(experiment, queue, **held))
                view = app_a.state.informers[2]
                await until(holds, view, caller.name, 3)
                third = await replica_a.post(f"{API}/job/", headers=caller.basic, **job_form(experiment, queue, **held))
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429), first.text
    assert third.json()["message"] == ("Too Many Requests - 3 of your queries are unfinished, the most allowed is "
                                       "3. Retry after 2 s.")
    assert len((await admin.list(DPQUERY.api_path(namespace)))["items"]) == 3


async def test_a_finished_query_frees_its_place(operator_process, node_agent, settings: ApiSettings,
                                                admin: KubeClient, caller, new_caller, engine_pool) -> None:
    admin_caller = await new_caller(admin_user=True)
    async for app in running_app(settings.model_copy(update={"max_queries_in_flight": 1}), admin, engine_pool):
        async with http_client(app) as http:
            experiment, queue = await register(http, caller, admin_caller)
            first = (await http.post(f"{API}/job/", headers=caller.basic, **job_form(experiment, queue))).json()
            ended = await wait_for_status(http, caller, first["jobId"], "finished", "failed")
            await until(lacks, app.state.informers[2], caller.name, f"dioptra-{first['jobId']}")
            second = await http.post(f"{API}/job/", headers=caller.basic, **job_form(experiment, queue))
    assert ended["status"] == "finished"
    assert second.status_code == 200, second.text
