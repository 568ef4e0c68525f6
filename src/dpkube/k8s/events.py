"""core/v1 Events, one builder for every component: what `kubectl describe` shows about our objects.

Posting is best effort by design: an Event must never delay or fail the work it reports, so the
recorder posts in the background and logs a failure instead of raising it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.timestamps import rfc3339

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024


def event_body(obj: Mapping[str, Any], reason: str, message: str, *, component: str, warning: bool = False,
               host: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """The Event reporting `reason` about `obj` (any object with apiVersion, kind and metadata)."""
    meta = obj["metadata"]
    now = rfc3339(at)
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Pod"), "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "type": "Warning" if warning else "Normal",
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    if host:
        event["reportingInstance"] = host
    return event


class EventRecorder:
    """Posts Events in the background; `drain` waits for those in flight (tests, shutdown)."""

    def __init__(self, client: KubeClient, component: str, host: str | None = None):
        self.client = client
        self.component = component
        self.host = host
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        body = event_body(obj, reason, message, component=self.component, warning=warning, host=self.host)
        task = asyncio.get_running_loop().create_task(self._post(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        """Post now and wait for it (still never raises)."""
        await self._post(event_body(obj, reason, message, component=self.component, warning=warning, host=self.host))

    async def _post(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            await self.client.create(core_path("events", namespace), body)
        except Exception as exc:  # an Event is best effort by design
            log.warning("could not post event %s for %s/%s: %s", body["reason"], namespace,
                        body["involvedObject"]["name"], exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
