"""The operator's query-pod feed: one list-and-watch per served scope of the pods that run a query (selected by
label on the server), each start, end or disappearance handed to the reconciler.

kopf's event machinery took about a seventh of the operator's main thread in a queued burst of 10,000, for a
handler that only passes a pod on; and kopf filters labels itself, so it decoded every pod of a namespace.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, NamedTuple

from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.informer import list_and_watch
from dpkube.k8s.pods import QUERY_UID_LABEL
from dpkube.operator.reconciler import Reconciler

MOVING_PHASES = ("Running", "Succeeded", "Failed")
"""A pod in one of these has news for its query; a Pending one has none."""


class QueryPod(NamedTuple):
    """Whose a pod is: enough to tell its query that it went."""

    namespace: str
    name: str
    query_name: str
    query_uid: str


def query_pod(pod: dict[str, Any]) -> QueryPod | None:
    """The pod's query, from its DPQuery owner reference; None for a labelled pod no DPQuery owns."""
    meta = pod["metadata"]
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == "DPQuery"), None)
    if owner is None:
        return None
    return QueryPod(meta["namespace"], meta["name"], owner["name"], owner["uid"])


class PodFeed:
    """The query pods of the served namespaces (or of all), as the API server lists and then changes them."""

    def __init__(self, client: KubeClient, namespaces: list[str], reconciler: Reconciler,
                 watch_seconds: int = 60) -> None:
        self.client = client
        """For watches only: each holds one of its connections for as long as it lasts."""
        self.scopes: list[str | None] = list(namespaces) or [None]
        self.reconciler = reconciler
        self.watch_seconds = watch_seconds
        self.known: dict[str, QueryPod] = {}
        """The query pods last listed or seen, by pod uid: a relisting tells which went while the watch was away."""
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for namespace in self.scopes:
            self._tasks.append(asyncio.create_task(list_and_watch(
                self.client, core_path("pods", namespace), label_selector=QUERY_UID_LABEL,
                on_list=functools.partial(self.listed, namespace), on_event=self.changed,
                watch_seconds=self.watch_seconds), name=f"pod feed {namespace or 'all'}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def listed(self, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A (re)listing of one scope: the query pods it no longer holds went while the watch was away."""
        present = {item["metadata"]["uid"] for item in items}
        for uid, known in list(self.known.items()):
            if uid not in present and namespace in (None, known.namespace):
                del self.known[uid]
                self._step(known, None)
        for item in items:
            self.changed("LISTED", item)

    def changed(self, kind: str, pod: dict[str, Any]) -> None:
        """One pod as it now is: a query's pod that went, or that runs or ended, moves its query on. A DELETED
        event of a pod without the label is the pod leaving the selection, not the node: it is only forgotten."""
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            known = self.known.pop(uid, None) or query_pod(pod)
            if known is not None and QUERY_UID_LABEL in (pod["metadata"].get("labels") or {}):
                self._step(known, None)
            return
        owner = query_pod(pod)
        if owner is None:
            return
        self.known[uid] = owner
        if (pod.get("status") or {}).get("phase") in MOVING_PHASES:
            self._step(owner, pod)

    def _step(self, owner: QueryPod, pod: dict[str, Any] | None) -> None:
        seen = pod if pod is not None else {"metadata": {"name": owner.name}}
        self.reconciler.pod_changed_soon(owner.namespace, owner.query_name, owner.query_uid, seen, pod is None)
