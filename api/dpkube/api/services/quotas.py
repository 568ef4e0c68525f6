"""Per-user limits: requests per second (a token bucket, per replica) and unfinished queries (across replicas).

Unfinished queries are counted from the DPQueries themselves, through the facade's watch-fed view of them
(feed.py), which keeps only the user of each unfinished one and files it under that user, so every replica
sees every replica's queries. The few this replica created and has not seen in its view yet are added, so a
burst of submissions cannot slip past the limit here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dpkube.api.errors import TooManyRequests
from dpkube.api.services.queries import USER_LABEL, user_hash
from dpkube.k8s.client import KubeClient
from dpkube.k8s.informer import Informer
from dpkube.models.dpquery import Phase
from dpkube.models.kinds import DPQUERY

MAX_BUCKETS = 10_000
"""Users whose request rate is remembered; past it, full buckets (idle users) are forgotten."""
IN_FLIGHT_RETRY_SECONDS = 2
TERMINAL = frozenset(phase.value for phase in Phase if phase.terminal)
IN_FLIGHT_INDEX = "unfinished-by-user"


def unfinished(query: dict[str, Any]) -> dict[str, Any] | None:
    """What the in-flight view keeps of a DPQuery: its name, version and user, until it ends."""
    if (query.get("status") or {}).get("phase") in TERMINAL:
        return None
    meta = query["metadata"]
    return {"metadata": {"name": meta["name"], "resourceVersion": meta.get("resourceVersion", "0")},
            "user": (query.get("spec") or {}).get("user")}


def in_flight_key(kept: dict[str, Any]) -> str | None:
    """The index of unfinished queries by user: only what `unfinished` kept carries a top-level user."""
    return kept.get("user")


class RateLimiter:
    """A token bucket per user: `rate` requests per second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, user: str) -> None:
        """Spend one request of `user`'s bucket, or 429 saying when the next one is allowed."""
        now = self.clock()
        tokens = self._tokens(user, now)
        if tokens < 1:
            raise TooManyRequests(f"more than {self.rate:g} requests per second.", (1 - tokens) / self.rate)
        self._buckets[user] = (tokens - 1, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._forget_idle(now)

    def _tokens(self, user: str, now: float) -> float:
        tokens, at = self._buckets.get(user, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def _forget_idle(self, now: float) -> None:
        for user in [u for u in self._buckets if self._tokens(u, now) >= self.burst]:
            del self._buckets[user]


@dataclass
class _Pending:
    """A query this replica is creating (version None) or created at `version`."""

    user: str
    version: int | None = None


class Slot:
    """Handed to the creator of one admitted query: it reports the created object."""

    def __init__(self, in_flight: InFlight, key: str) -> None:
        self._in_flight = in_flight
        self._key = key

    def created(self, query: dict[str, Any]) -> None:
        pending = self._in_flight._pending.get(self._key)
        if pending is not None:
            pending.version = int(query["metadata"].get("resourceVersion") or 0)


class InFlight:
    """At most `limit` unfinished DPQueries per user in the namespace the facade creates them in."""

    def __init__(self, client: KubeClient, namespace: str, limit: int, informer: Informer | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.limit = limit
        self.informer = informer
        self._pending: dict[str, _Pending] = {}
        self._read_through = asyncio.Lock()

    @asynccontextmanager
    async def slot(self, user: str) -> AsyncIterator[Slot]:
        """Admit one more query of `user` (429 past the limit) for the duration of its creation."""
        key = uuid.uuid4().hex
        if self.informer is not None and self.informer.synced:
            self._admit(user, self._cached(user))
        else:
            async with self._read_through:
                self._admit(user, await self._listed(user))
        self._pending[key] = _Pending(user)
        try:
            yield Slot(self, key)
        except BaseException:
            del self._pending[key]
            raise
        if self._pending[key].version is None:
            del self._pending[key]

    def _admit(self, user: str, count: int) -> None:
        if count >= self.limit:
            raise TooManyRequests(f"{count} of your queries are unfinished, the most allowed is {self.limit}.",
                                  IN_FLIGHT_RETRY_SECONDS)

    def _cached(self, user: str) -> int:
        assert self.informer is not None
        seen = self.informer.version
        for key in [k for k, p in self._pending.items() if p.version is not None and p.version <= seen]:
            del self._pending[key]
        return len(self.informer.indexed(IN_FLIGHT_INDEX, user)) + sum(
            1 for pending in self._pending.values() if pending.user == user)

    async def _listed(self, user: str) -> int:
        items = await self.client.list_all(DPQUERY.api_path(self.namespace),
                                           label_selector=f"{USER_LABEL}={user_hash(user)}")
        listed = sum(1 for item in items if (record := unfinished(item)) is not None and record["user"] == user)
        return listed + sum(1 for p in self._pending.values() if p.user == user and p.version is None)
