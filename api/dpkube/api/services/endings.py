"""The ends of the DPQueries this replica created, seen on the facade's one feed of DPQueries: no watch per request.

A waiter is registered under the query's name before the query is created, so no event can slip past it;
the feed resolves it when it hands over the query terminal (a watch event or a relist) or deleted. While
the feed is not synced, a waiter reads its query itself (a GET) every `poll_seconds`. The terminal object
is put into the feed's view before the answer leaves, so the caller's next read (its history) shows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dpkube.api.errors import InternalServerException, QueryStillRunning
from dpkube.api.services.retry import retrying
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.k8s.informer import Informer
from dpkube.models.dpquery import Phase, phase_of
from dpkube.models.kinds import DPQUERY

POLL_SECONDS = 1.0
DELETED = "DELETED"


def terminal(query: dict[str, Any]) -> bool:
    phase = phase_of(query)
    return phase is not None and phase.terminal


def deleted_early(name: str) -> InternalServerException:
    return InternalServerException(f"query {name} was deleted before it finished")


@dataclass
class _Waiter:
    ended: asyncio.Future[tuple[str, dict[str, Any]]]
    """Resolved with (event type, object) once the feed shows the query terminal or deleted."""
    phase: Phase | None = field(default=None)
    """The last phase the feed showed, for the answer past the wait."""


class Endings:
    """Waiters by DPQuery name, resolved by the feed of the namespace's DPQueries (None: by GETs alone)."""

    def __init__(self, client: KubeClient, namespace: str, feed: Informer | None,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.client = client
        self.namespace = namespace
        self.feed = feed
        self.poll_seconds = poll_seconds
        self._waiters: dict[str, _Waiter] = {}
        if feed is not None:
            feed.observe(self._seen)

    @contextmanager
    def expect(self, name: str) -> Iterator[None]:
        """Follow the query `name` for the duration of the block; enter it before the query is created."""
        self._waiters[name] = _Waiter(asyncio.get_running_loop().create_future())
        try:
            yield
        finally:
            del self._waiters[name]

    def _seen(self, kind: str, query: dict[str, Any]) -> None:
        waiter = self._waiters.get(query["metadata"]["name"])
        if waiter is None or waiter.ended.done():
            return
        if terminal(query) or kind == DELETED:
            waiter.ended.set_result((kind, query))
        else:
            waiter.phase = phase_of(query)

    async def wait(self, query: dict[str, Any], wait_seconds: float) -> dict[str, Any]:
        """`query` (as created, inside `expect`) once terminal; 504 QueryStillRunning past `wait_seconds`."""
        name = query["metadata"]["name"]
        waiter = self._waiters[name]
        deadline = time.monotonic() + wait_seconds
        while not terminal(query):
            if waiter.ended.done():
                kind, query = waiter.ended.result()
                if kind != DELETED:
                    break
                if not terminal(query):
                    raise deleted_early(name)
                return query
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                phase = waiter.phase or phase_of(query) or Phase.PENDING
                raise QueryStillRunning(self.namespace, name, phase.value, wait_seconds)
            await asyncio.wait({waiter.ended}, timeout=min(remaining, self.poll_seconds))
            if not waiter.ended.done() and not (self.feed is not None and self.feed.synced):
                query = await self._read(name)
        if self.feed is not None:
            self.feed.put(query)
        return query

    async def _read(self, name: str) -> dict[str, Any]:
        try:
            return await retrying(lambda: self.client.get(DPQUERY.api_path(self.namespace, name)))
        except NotFound:
            raise deleted_early(name) from None
