"""One list-and-watch of DPQueries per facade: query routes see their query end on it, never on a watch of their own.

The waiter of a query is resolved by the shared feed (its watch events or its list); while the feed is not
synced, the waiter reads its query with a GET.
"""

from __future__ import annotations

import asyncio
import uuid

from dpkube.api.services.endings import Endings
from dpkube.api.services.feed import query_feed
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.dpquery import Phase, phase_of
from dpkube.models.kinds import DPQUERY
from dpkube_testing import builders

from .conftest import CountingClient, http_client, running_app

SQL_AT_4 = {**examples.SMARTNOISE_SQL_QUERY, "epsilon": 4.0}
MISSING_EXPERIMENT = "no-such-experiment"
"""A query naming it is refused by the operator when one runs, before anything is priced or reserved."""


def dpquery_watches(counting: CountingClient) -> int:
    return counting.count("WATCH", "/dpqueries")


async def ended_query(admin: KubeClient, namespace: str) -> dict:
    """A DPQuery that is Rejected (by this test, or by an operator running in the session: either way, terminal)."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    created = await admin.create(DPQUERY.api_path(namespace),
                                 builders.dpquery(name, experiment=MISSING_EXPERIMENT))
    await admin.patch(DPQUERY.api_path(namespace, name) + "/status",
                      {"status": {"phase": "Rejected", "message": "ended by the test"}})
    return created


async def test_concurrent_queries_are_answered_without_a_watch_of_their_own(
        operator_process, settings, counting, engine_pool, new_caller) -> None:
    caller = await new_caller({"PENGUIN": (2.0, 0.005)})
    async for app in running_app(settings, counting, engine_pool):
        async with http_client(app) as http:
            watches_at_start = dpquery_watches(counting)
            answers = await asyncio.gather(*(
                http.post("/smartnoise_sql_query", json=SQL_AT_4, headers=caller.headers) for _ in range(4)))
            watches_after = dpquery_watches(counting)
    assert [a.status_code for a in answers] == [400] * 4
    assert all("Not enough budget" in a.json()["InvalidQueryException"] for a in answers)
    assert (watches_at_start, watches_after) == (1, 1)


async def test_the_feeds_list_resolves_a_waiter_whose_query_ended_before_it(
        admin, namespace, counting) -> None:
    feed = query_feed(counting, namespace)
    endings = Endings(counting, namespace, feed, poll_seconds=600)
    name = f"q-{uuid.uuid4().hex[:8]}"
    with endings.expect(name):
        created = await admin.create(DPQUERY.api_path(namespace),
                                     builders.dpquery(name, experiment=MISSING_EXPERIMENT))
        await admin.patch(DPQUERY.api_path(namespace, name) + "/status", {"status": {"phase": "Rejected"}})
        feed.start()
        try:
            final = await endings.wait(created, 60)
        finally:
            await feed.stop()
    assert phase_of(final) == Phase.REJECTED
    assert counting.count("GET", f"/dpqueries/{name}") == 0


async def test_a_waiter_reads_its_query_while_the_feed_is_not_synced(admin, namespace, counting) -> None:
    unsynced = query_feed(counting, namespace)
    endings = Endings(counting, namespace, unsynced, poll_seconds=0.05)
    query = await ended_query(admin, namespace)
    with endings.expect(query["metadata"]["name"]):
        final = await endings.wait(query, 60)
    assert phase_of(final) == Phase.REJECTED
    assert counting.count("GET", f"/dpqueries/{query['metadata']['name']}") >= 1
    assert dpquery_watches(counting) == 0
