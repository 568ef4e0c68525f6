"""core/v1 Events, one builder for every component: what `kubectl describe` shows about our objects.

Posting is best effort by design: an Event must never delay or fail the work it reports, so the
recorder posts in the background and logs a failure instead of raising it. Like client-go's recorder,
it keeps at most MAX_QUEUED Events waiting and drops the newest beyond that: a burst of thousands of
queries would otherwise hold thousands of waiting posts in memory and keep the API server busy long after.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.timestamps import rfc3339

log = logging.getLogger(__name__)
MAX_MESSAGE = 1024
MAX_QUEUED = 1000
"""Events waiting to be posted, at most (client-go's broadcaster queues 1000 and drops beyond)."""


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
    """Posts Events in the background, one at a time in the order recorded (more at once slowed the work they
    report in a burst), dropping the newest when MAX_QUEUED wait; `drain` waits for those queued (tests,
    shutdown)."""

    def __init__(self, client: KubeClient, component: str, host: str | None = None):
        self.client = client
        self.component = component
        self.host = host
        self.dropped = 0
        self._queued: collections.deque[dict[str, Any]] = collections.deque()
        self._poster: asyncio.Task[None] | None = None

    def record(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        if len(self._queued) >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped % MAX_QUEUED == 1:
                log.warning("%d events waiting: dropped %d so far (the newest)", len(self._queued), self.dropped)
            return
        self._queued.append(event_body(obj, reason, message, component=self.component, warning=warning,
                                       host=self.host))
        if self._poster is None or self._poster.done():
            self._poster = asyncio.get_running_loop().create_task(self._post_queued())

    async def post(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        """Post now and wait for it (still never raises)."""
        await self._post(event_body(obj, reason, message, component=self.component, warning=warning, host=self.host))

    async def _post_queued(self) -> None:
        while self._queued:
            await self._post(self._queued.popleft())

    async def _post(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            await self.client.create(core_path("events", namespace), body, answer=False)
        except Exception as exc:  # an Event is best effort by design
            log.warning("could not post event %s for %s/%s: %s", body["reason"], namespace,
                        body["involvedObject"]["name"], exc)

    async def drain(self) -> None:
        while self._poster is not None and not self._poster.done():
            await asyncio.gather(self._poster, return_exceptions=True)
