"""Per-user limits: a token bucket of requests, and unfinished queries counted from the watch-fed view."""

from __future__ import annotations

import pytest

from dpkube.api.errors import TooManyRequests
from dpkube.api.services.feed import query_feed
from dpkube.api.services.quotas import InFlight, RateLimiter, unfinished
from dpkube.k8s.informer import Informer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def query(name: str, user: str, version: int, phase: str | None = "Pending") -> dict:
    return {"metadata": {"name": name, "resourceVersion": str(version)}, "spec": {"user": user},
            "status": {"phase": phase} if phase else {}}


def test_a_burst_is_allowed_then_refused_with_the_wait_until_the_next_request() -> None:
    limiter = RateLimiter(rate=2.0, burst=3, clock=Clock())
    for _ in range(3):
        limiter.take("alice")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("alice")
    assert refused.value.headers() == {"Retry-After": "1"}


def test_the_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=1, clock=clock)
    limiter.take("alice")
    clock.now += 0.5
    limiter.take("alice")
    with pytest.raises(TooManyRequests):
        limiter.take("alice")


def test_one_users_burst_leaves_anothers_bucket_full() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
    limiter.take("alice")
    with pytest.raises(TooManyRequests):
        limiter.take("alice")
    limiter.take("bob")


def test_a_refused_request_costs_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    limiter.take("alice")
    for _ in range(5):
        with pytest.raises(TooManyRequests):
            limiter.take("alice")
    clock.now += 1.0
    limiter.take("alice")


def test_the_in_flight_view_keeps_the_user_of_unfinished_queries_only() -> None:
    assert unfinished(query("q", "alice", 5))["user"] == "alice"
    assert unfinished(query("q", "alice", 5, phase=None))["user"] == "alice"
    for phase in ("Succeeded", "Failed", "Rejected", "TimedOut", "Cancelled"):
        assert unfinished(query("q", "alice", 5, phase=phase)) is None


def synced_view(*queries: dict) -> Informer:
    view = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    for item in queries:
        view.put(item)
    view.version = max((int(q["metadata"]["resourceVersion"]) for q in queries), default=1)
    view.synced_at = 1.0
    return view


async def test_a_user_at_the_limit_gets_429_and_others_do_not() -> None:
    view = synced_view(query("a1", "alice", 1), query("a2", "alice", 2), query("b1", "bob", 3))
    in_flight = InFlight(client=None, namespace="dpkube", limit=2, informer=view)  # type: ignore[arg-type]
    with pytest.raises(TooManyRequests, match="2 of your queries are unfinished"):
        async with in_flight.slot("alice"):
            pass
    async with in_flight.slot("bob"):
        pass


async def test_finished_queries_do_not_count() -> None:
    view = synced_view(query("a1", "alice", 1), query("a2", "alice", 2, phase="Succeeded"))
    in_flight = InFlight(client=None, namespace="dpkube", limit=2, informer=view)  # type: ignore[arg-type]
    async with in_flight.slot("alice"):
        pass


async def test_a_query_created_here_counts_until_the_view_has_seen_it() -> None:
    view = synced_view(query("a1", "alice", 1))
    in_flight = InFlight(client=None, namespace="dpkube", limit=2, informer=view)  # type: ignore[arg-type]
    async with in_flight.slot("alice") as slot:
        slot.created(query("a2", "alice", 7))
    with pytest.raises(TooManyRequests):
        async with in_flight.slot("alice"):
            pass
    view.put(query("a2", "alice", 7))
    view.version = 7
    with pytest.raises(TooManyRequests):
        async with in_flight.slot("alice"):
            pass
    view.put(query("a2", "alice", 9, phase="Succeeded"))
    view.version = 9
    async with in_flight.slot("alice"):
        pass


async def test_a_creation_that_fails_frees_its_slot() -> None:
    view = synced_view(query("a1", "alice", 1))
    in_flight = InFlight(client=None, namespace="dpkube", limit=2, informer=view)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        async with in_flight.slot("alice"):
            raise RuntimeError("create failed")
    async with in_flight.slot("alice") as slot:
        slot.created(query("a2", "alice", 2))


async def test_concurrent_creations_hold_their_slots_until_they_end() -> None:
    view = synced_view()
    in_flight = InFlight(client=None, namespace="dpkube", limit=1, informer=view)  # type: ignore[arg-type]
    async with in_flight.slot("alice"):
        with pytest.raises(TooManyRequests):
            async with in_flight.slot("alice"):
                pass
