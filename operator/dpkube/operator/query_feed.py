"""The operator's DPQuery feed: one list-and-watch per served scope, straight into the registry and the reconciler.

kopf's per-event machinery (a worker per object, causes, a Body, a Patch, loggers, a context per handler call)
took about a quarter of the operator's main thread in a queued burst, around a handler that only records the
query and starts a step of its own. The feed does just that, on connections of its own, so the API client's
pool stays for writes.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from dpkube.k8s.client import KubeClient
from dpkube.k8s.informer import list_and_watch
from dpkube.models.dpquery import phase_of
from dpkube.models.kinds import DPQUERY
from dpkube.operator.domain.lifecycle import FINALIZER
from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Registry


def settled(body: dict[str, Any]) -> bool:
    """Ended and cleaned up: nothing is left to do for it."""
    phase = phase_of(body)
    return phase is not None and phase.terminal and FINALIZER not in (body["metadata"].get("finalizers") or [])


class QueryFeed:
    """Every DPQuery of the served namespaces (or of all), as the API server lists and then changes them."""

    def __init__(self, client: KubeClient, namespaces: list[str], registry: Registry, reconciler: Reconciler,
                 watch_seconds: int = 60) -> None:
        self.client = client
        """For watches only: each holds one of its connections for as long as it lasts."""
        self.scopes: list[str | None] = list(namespaces) or [None]
        """Each watched namespace; None: every namespace."""
        self.registry = registry
        self.reconciler = reconciler
        self.watch_seconds = watch_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[None]] = set()
        """First listings whose steps wait for every scope's."""
        self._first_lists = [asyncio.Event() for _ in self.scopes]

    def start(self) -> None:
        for namespace, first in zip(self.scopes, self._first_lists, strict=True):
            path = DPQUERY.api_path(namespace)
            self._tasks.append(asyncio.create_task(list_and_watch(
                self.client, path, on_list=functools.partial(self.listed, namespace, first),
                on_event=self.changed, watch_seconds=self.watch_seconds), name=f"query feed {path}"))

    async def wait_listed(self) -> None:
        """Until every scope was listed once: the registry then knows every stored query."""
        await asyncio.gather(*(first.wait() for first in self._first_lists))
        self.registry.listed = True

    async def stop(self) -> None:
        tasks = (*self._tasks, *self._waiting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    def listed(self, namespace: str | None, first: asyncio.Event, items: list[dict[str, Any]]) -> None:
        """A (re)listing of one scope: the queries it no longer holds were deleted while the watch was away;
        every other one is recorded, and stepped on unless settled. Until every scope was listed once, steps
        wait for the registry to be whole (`wait_listed`): a queue's free slots are counted on it."""
        present = {item["metadata"]["uid"] for item in items}
        for uid, entry in list(self.registry.entries.items()):
            if uid not in present and (namespace is None or entry.namespace == namespace):
                self.reconciler.forget(uid)
        for item in items:
            self.registry.observe(item)
        first.set()
        self._step_unsettled(items)

    def _step_unsettled(self, items: list[dict[str, Any]]) -> None:
        """Step on the queries that are not settled; before every scope was listed once, only then."""
        if not self.registry.listed:
            task = asyncio.create_task(self._step_once_listed(items))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return
        for item in items:
            if not settled(item):
                self.reconciler.reconcile_soon(item["metadata"]["namespace"], item["metadata"]["name"], item)

    async def _step_once_listed(self, items: list[dict[str, Any]]) -> None:
        await self.wait_listed()
        self._step_unsettled(items)

    def changed(self, kind: str, body: dict[str, Any]) -> None:
        """One watch event: a deleted query is forgotten; any other is recorded, and stepped on unless settled."""
        if kind == "DELETED":
            self.reconciler.forget(body["metadata"]["uid"])
            return
        self.registry.observe(body)
        self._step_unsettled([body])
