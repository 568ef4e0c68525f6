"""The Queue a Lomas query runs through: the facade's Lomas queue, when that queue may take the query's library.

A queue that warms some libraries only may run its pods on an image that has no others (the core image has no
torch, so no synthetic data): a query of another library runs outside any queue, on a cold pod of the
operator's default image, as every Lomas query does when no Lomas queue is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpkube.api.services.retry import retrying
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.k8s.informer import Informer
from dpkube.models.kinds import QUEUE
from dpkube.models.payloads import Library
from dpkube.models.queue import QueueSpec


def queue_for(library: Library, queue: str, spec: QueueSpec | None) -> str | None:
    """`queue` when it exists (`spec`) and warms `library` (or every library); else None: no queue."""
    if not queue or spec is None:
        return None
    if spec.warm_libraries and library not in spec.warm_libraries:
        return None
    return queue


@dataclass(frozen=True)
class LomasQueue:
    """The facade's Lomas queue, as the facade's watch of Queues holds it (an admin may change its spec at any time),
    or read when there is no synced watch."""

    client: KubeClient
    namespace: str
    """The system namespace, where Queues live."""
    name: str
    informer: Informer | None = None

    async def spec(self) -> QueueSpec | None:
        """The queue's spec, or None when it does not exist."""
        if self.informer is not None and self.informer.synced:
            body = self.informer.objects.get(self.name)
        else:
            try:
                body = await retrying(lambda: self.client.get(QUEUE.api_path(self.namespace, self.name)))
            except NotFound:
                return None
        return None if body is None else QueueSpec.model_validate(body.get("spec") or {})

    async def for_library(self, library: Library) -> str | None:
        """The queue a query of `library` runs through, if any."""
        return queue_for(library, self.name, await self.spec())
