"""Kubernetes Events for phase changes and budget movements, posted in the background.

An Event must never delay or fail a reconcile: posting is fire-and-forget, and a failure is logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

from dpkube.k8s.client import KubeClient, core_path

log = logging.getLogger(__name__)
COMPONENT = "dpkube-operator"


class EventRecorder:
    """Posts core/v1 Events about objects."""

    def __init__(self, client: KubeClient):
        self.client = client
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(self._post(obj, reason, message, warning))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, obj: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        meta = obj["metadata"]
        at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "firstTimestamp": at,
            "lastTimestamp": at,
            "count": 1,
        }
        try:
            await self.client.create(core_path("events", meta["namespace"]), event)
        except Exception as exc:  # an Event is best effort by design
            log.warning("could not post event %s for %s: %s", reason, meta.get("name"), exc)

    async def drain(self) -> None:
        """Wait for the events in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
