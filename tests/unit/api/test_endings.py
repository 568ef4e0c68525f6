"""Waiters for the end of a query, resolved by the facade's one feed of DPQueries (no API call while it is synced)."""

from __future__ import annotations

from typing import Any

import pytest

from dpkube.api.errors import InternalServerException, QueryStillRunning
from dpkube.api.services.endings import Endings
from dpkube.api.services.feed import query_feed
from dpkube.api.services.history import HISTORY_INDEX
from dpkube.k8s.informer import Informer
from dpkube_testing import builders

SUCCEEDED = {"phase": "Succeeded", "spent": {"epsilon": 0.1, "delta": 1e-5}, "result": 346}


def query(version: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = builders.dpquery("q1", user="alice")
    body["metadata"].update(namespace="dpkube", resourceVersion=str(version), creationTimestamp="2026-01-01T00:00:00Z")
    return {**body, "status": status or {}}


def synced_feed() -> Informer:
    feed = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    feed.synced_at = 1.0
    return feed


async def test_past_the_wait_the_answer_is_504_with_the_last_phase_the_feed_showed() -> None:
    feed = synced_feed()
    endings = Endings(client=None, namespace="dpkube", feed=feed, poll_seconds=0.01)  # type: ignore[arg-type]
    with endings.expect("q1"):
        feed._changed("MODIFIED", query(2, {"phase": "Running"}))
        with pytest.raises(QueryStillRunning) as late:
            await endings.wait(query(1), 0.05)
    assert late.value.message.startswith("Query q1 is still Running after 0.05 s")


async def test_a_query_deleted_before_it_ended_is_an_internal_error() -> None:
    feed = synced_feed()
    endings = Endings(client=None, namespace="dpkube", feed=feed)  # type: ignore[arg-type]
    with endings.expect("q1"):
        feed._changed("DELETED", query(2, {"phase": "Running"}))
        with pytest.raises(InternalServerException, match="q1 was deleted before it finished"):
            await endings.wait(query(1), 5)


async def test_a_query_seen_ended_in_a_relist_is_in_the_view_when_its_answer_leaves() -> None:
    feed = synced_feed()
    endings = Endings(client=None, namespace="dpkube", feed=feed)  # type: ignore[arg-type]
    with endings.expect("q1"):
        feed._keep_listed(query(2, SUCCEEDED))
        final = await endings.wait(query(1), 5)
    assert final["status"]["phase"] == "Succeeded"
    assert list(feed.indexed(HISTORY_INDEX, ("alice", "PENGUIN"))) == ["q1"]

