"""The scheduler's binding step for one node: unscheduled pods get bound through `pods/binding`.

Pods whose nodeSelector this node does not satisfy are left Pending with PodScheduled=False, as the
scheduler leaves them; affinity, taints and resource fit are not considered (there is one node).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dpkube.k8s.client import ApiError, Conflict, KubeClient, NotFound, Unreachable, core_path
from dpkube.k8s.informer import list_and_watch
from dpkube.k8s.timestamps import rfc3339

DEFAULT_SCHEDULER = "default-scheduler"
UNSCHEDULED = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed"

log = logging.getLogger(__name__)


def wants_binding(pod: Mapping[str, Any], scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    """Unbound, not being deleted, and asking for this scheduler (an empty name means the default one)."""
    spec, meta = pod["spec"], pod["metadata"]
    asked = spec.get("schedulerName") or DEFAULT_SCHEDULER
    return not spec.get("nodeName") and asked == scheduler_name and not meta.get("deletionTimestamp")


class Binder:
    """Watches unscheduled pods in the namespaces (None: all) and binds each to `node_name`.

    `watcher` holds the long-lived watch connections, `client` makes the binding requests.
    """

    def __init__(self, client: KubeClient, watcher: KubeClient, node_name: str, node_labels: Mapping[str, str],
                 namespaces: Sequence[str | None], *, scheduler_name: str = DEFAULT_SCHEDULER,
                 retry_seconds: float = 1.0):
        self.client = client
        self.watcher = watcher
        self.node_name = node_name
        self.scheduler_name = scheduler_name
        self.node_labels = dict(node_labels)
        self.namespaces = namespaces
        self.retry_seconds = retry_seconds
        self._unbound: dict[str, dict[str, Any]] = {}
        self._binding: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        try:
            await asyncio.gather(*(
                list_and_watch(self.watcher, core_path("pods", ns), field_selector=UNSCHEDULED,
                               on_list=self._relisted, on_event=self._changed)
                for ns in self.namespaces
            ))
        finally:
            for task in self._binding.values():
                task.cancel()

    def _relisted(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            self._changed("ADDED", pod)

    def _changed(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "DELETED" or not wants_binding(pod, self.scheduler_name):
            self._unbound.pop(uid, None)
            return
        self._unbound[uid] = pod
        if uid not in self._binding:
            task = asyncio.create_task(self._bind(uid), name=f"bind {pod['metadata']['name']}")
            self._binding[uid] = task
            task.add_done_callback(lambda _: self._binding.pop(uid, None))

    async def _bind(self, uid: str) -> None:
        while (pod := self._unbound.get(uid)) is not None:
            meta = pod["metadata"]
            try:
                if not self._fits(pod):
                    await self._mark_unschedulable(pod)
                    return
                await self.client.create(core_path("pods", meta["namespace"], meta["name"]) + "/binding", {
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
                })
                log.debug("bound %s/%s to %s", meta["namespace"], meta["name"], self.node_name)
                self._unbound.pop(uid, None)
                return
            except (NotFound, Conflict):
                self._unbound.pop(uid, None)
                return
            except (ApiError, Unreachable, OSError) as error:
                log.warning("binding %s/%s failed, retrying: %s", meta["namespace"], meta["name"], error)
                await asyncio.sleep(self.retry_seconds)

    def _fits(self, pod: Mapping[str, Any]) -> bool:
        selector = pod["spec"].get("nodeSelector") or {}
        return all(self.node_labels.get(k) == v for k, v in selector.items())

    async def _mark_unschedulable(self, pod: Mapping[str, Any]) -> None:
        conditions = {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}
        if conditions.get("PodScheduled", {}).get("reason") == "Unschedulable":
            return
        meta = pod["metadata"]
        await self.client.patch(core_path("pods", meta["namespace"], meta["name"]) + "/status", {
            "metadata": {"uid": meta["uid"]},
            "status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastProbeTime": None,
                "lastTransitionTime": rfc3339(),
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            }]},
        }, kind="strategic")
