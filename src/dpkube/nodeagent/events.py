"""Warning Events on pods, for what the agent cannot do as a kubelet would (`kubectl describe` shows them)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from dpkube.k8s.client import ApiError, KubeClient, core_path
from dpkube.nodeagent.timestamps import rfc3339

COMPONENT = "dpkube-nodeagent"
log = logging.getLogger(__name__)


class EventRecorder:
    """Best effort: an Event that cannot be written is logged, never raised."""

    def __init__(self, client: KubeClient, node_name: str):
        self.client = client
        self.node_name = node_name

    async def warn(self, pod: Mapping[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]
        now = rfc3339()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": meta["namespace"],
                               "name": meta["name"], "uid": meta["uid"]},
            "type": "Warning", "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT, "reportingInstance": self.node_name,
        }
        try:
            await self.client.create(core_path("events", meta["namespace"]), event)
        except (ApiError, OSError) as error:
            log.warning("could not record event %s on pod %s/%s: %s", reason, meta["namespace"], meta["name"], error)
