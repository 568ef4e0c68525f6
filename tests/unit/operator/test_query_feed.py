"""The operator's DPQuery feed: what each listing and watch event records, steps on and forgets."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from dpkube.k8s.client import KubeClient
from dpkube.operator.domain.lifecycle import FINALIZER
from dpkube.operator.query_feed import QueryFeed
from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Registry

NAMESPACES = ["a", "b"]


class Steps:
    """The reconciler as the feed sees it: which queries it was asked to step on, and which it forgot."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.stepped: list[tuple[str, str, str]] = []
        self.forgotten: list[str] = []

    def reconcile_soon(self, namespace: str, name: str, seen: dict[str, Any]) -> None:
        self.stepped.append((namespace, name, seen["metadata"]["resourceVersion"]))

    def forget(self, uid: str) -> None:
        self.forgotten.append(uid)
        self.registry.forget(uid)


def query(name: str, namespace: str = "a", phase: str | None = None, finalizers: tuple[str, ...] = (),
          version: str = "1") -> dict[str, Any]:
    return {"metadata": {"uid": f"{namespace}-{name}", "namespace": namespace, "name": name,
                         "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": version,
                         "finalizers": list(finalizers)},
            "spec": {}, "status": {"phase": phase} if phase else {}}


def feed(started: bool = True) -> tuple[QueryFeed, Steps]:
    """The feed past its first listings (`started`), or before them."""
    registry = Registry()
    registry.listed = started
    steps = Steps(registry)
    return QueryFeed(cast(KubeClient, None), NAMESPACES, registry, cast(Reconciler, steps)), steps


def listed(feed: QueryFeed, index: int, items: list[dict[str, Any]]) -> None:
    feed.listed(NAMESPACES[index], feed._first_lists[index], items)


def test_a_watch_event_records_the_query_and_steps_it_on_with_the_body_it_carried() -> None:
    queries, steps = feed()
    queries.changed("ADDED", query("q", version="7"))
    assert "a-q" in queries.registry.entries
    assert steps.stepped == [("a", "q", "7")]


def test_a_settled_query_is_recorded_but_not_stepped() -> None:
    queries, steps = feed()
    queries.changed("MODIFIED", query("q", phase="Succeeded"))
    assert queries.registry.entries["a-q"].phase is not None
    assert steps.stepped == []


def test_an_ended_query_still_holding_the_finalizer_is_stepped_to_its_clean_up() -> None:
    queries, steps = feed()
    queries.changed("MODIFIED", query("q", phase="Succeeded", finalizers=(FINALIZER,)))
    assert steps.stepped == [("a", "q", "1")]


def test_a_deleted_query_is_forgotten() -> None:
    queries, steps = feed()
    queries.changed("ADDED", query("q"))
    queries.changed("DELETED", query("q"))
    assert steps.forgotten == ["a-q"] and "a-q" not in queries.registry.entries


def test_a_relisting_forgets_the_queries_of_its_namespace_deleted_while_the_watch_was_away() -> None:
    queries, steps = feed()
    for name, namespace in (("kept", "a"), ("gone", "a"), ("elsewhere", "b")):
        queries.changed("ADDED", query(name, namespace))
    listed(queries, 0, [query("kept")])
    assert steps.forgotten == ["a-gone"]
    assert set(queries.registry.entries) == {"a-kept", "b-elsewhere"}


async def test_the_first_listings_step_nothing_until_every_namespace_was_listed() -> None:
    queries, steps = feed(started=False)
    listed(queries, 0, [query("q", "a")])
    await asyncio.sleep(0)
    assert steps.stepped == [] and not queries.registry.listed
    listed(queries, 1, [query("r", "b"), query("done", "b", phase="Rejected")])
    await queries.wait_listed()
    for _ in range(3):
        await asyncio.sleep(0)
    assert queries.registry.listed
    assert sorted(steps.stepped) == [("a", "q", "1"), ("b", "r", "1")]


async def test_a_watch_event_before_every_namespace_was_listed_is_stepped_only_then() -> None:
    queries, steps = feed(started=False)
    listed(queries, 0, [])
    queries.changed("ADDED", query("early", "a"))
    await asyncio.sleep(0)
    assert steps.stepped == []
    listed(queries, 1, [])
    await queries.wait_listed()
    for _ in range(3):
        await asyncio.sleep(0)
    assert steps.stepped == [("a", "early", "1")]


async def test_queries_first_seen_after_the_first_listings_are_fresh() -> None:
    queries, _ = feed(started=False)
    listed(queries, 0, [query("old")])
    listed(queries, 1, [])
    await queries.wait_listed()
    queries.changed("ADDED", query("new"))
    assert not queries.registry.entries["a-old"].fresh and queries.registry.entries["a-new"].fresh
