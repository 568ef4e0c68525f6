"""Integer ids for Experiments and Queues, allocated in the cluster so they survive restarts and replicas.

A counter ConfigMap in the system namespace holds the last id of each kind; an allocation replaces it
conditioned on the resourceVersion it read (compare-and-swap), so concurrent facades never hand out the
same id. A failed create afterwards burns its id: gaps are fine, reuse is not.
"""

from __future__ import annotations

import asyncio
import functools
import random

from dpkube.api.errors import InternalServerException
from dpkube.api.services.dioptra.records import ID_LABEL, object_id
from dpkube.api.services.retry import retrying
from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path

COUNTERS = "dpkube-dioptra-ids"
ATTEMPTS = 64


class IdAllocator:
    """Hands out increasing ids per kind (`experiment`, `queue`) from the counter ConfigMap."""

    def __init__(self, client: KubeClient, namespace: str, seeds: dict[str, str]) -> None:
        """`seeds`: per kind, the collection path whose labelled objects seed a missing counter."""
        self.client = client
        self.namespace = namespace
        self.seeds = seeds

    async def next(self, kind: str) -> int:
        path = core_path("configmaps", self.namespace, COUNTERS)
        for attempt in range(ATTEMPTS):
            try:
                counters = await retrying(lambda: self.client.get(path))
            except NotFound:
                await self._create()
                continue
            data = dict(counters.get("data") or {})
            allocated = int(data.get(kind, "0")) + 1
            data[kind] = str(allocated)
            updated = {**counters, "data": data}
            try:
                await retrying(functools.partial(self.client.replace, path, updated))
                return allocated
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.02 * (attempt + 1)))
        raise InternalServerException(f"could not allocate a {kind} id after {ATTEMPTS} attempts")

    async def _create(self) -> None:
        """The counter map, seeded with the highest id in use (objects labelled before it existed)."""
        data = {}
        for kind, collection in self.seeds.items():
            items = await retrying(functools.partial(self.client.list_all, collection, label_selector=ID_LABEL))
            data[kind] = str(max((object_id(item) or 0 for item in items), default=0))
        body = {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                "metadata": {"name": COUNTERS, "namespace": self.namespace,
                             "labels": {"app.kubernetes.io/part-of": "dpkube"}}}
        try:
            await retrying(lambda: self.client.create(core_path("configmaps", self.namespace), body))
        except Conflict:
            pass
