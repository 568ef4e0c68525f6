"""Experiment deletion cascades: deleting an Experiment cancels and deletes its queries first.

A finalizer keeps the Experiment until none of its queries remains, so no query outlives the
experiment it was counted in; each query's own finalizer returns its reservation on the way out.
Then the experiment's cap books go, so an experiment made again under the same name starts afresh.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dpkube.k8s.caps import ExperimentCaps
from dpkube.k8s.client import Conflict, KubeClient, NotFound
from dpkube.models.kinds import DPQUERY, EXPERIMENT
from dpkube.operator.registry import Registry

CASCADE_FINALIZER = "dpkube.io/cascade-queries"


class ExperimentCascade:
    """Keeps the cascade finalizer on live experiments and carries out the cascade on deletion."""

    def __init__(self, client: KubeClient, registry: Registry, caps: ExperimentCaps | None = None):
        self.client = client
        self.registry = registry
        self.caps = caps
        self.deleting: set[tuple[str, str]] = set()

    async def observe(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if CASCADE_FINALIZER in finalizers:
                self.deleting.add(key)
                await self.cascade(*key)
            return
        if CASCADE_FINALIZER not in finalizers:
            await self._set_finalizers(meta, [*finalizers, CASCADE_FINALIZER])

    async def cascade(self, namespace: str, name: str) -> None:
        """Delete the experiment's queries; once none is left, let the experiment go."""
        remaining = [e for e in self.registry.entries.values() if e.namespace == namespace and e.experiment == name]
        for entry in remaining:
            if not entry.deleting:
                with contextlib.suppress(NotFound):
                    await self.client.delete(DPQUERY.api_path(namespace, entry.name))
        if remaining:
            return
        if self.caps is not None:
            await self.caps.forget_experiment(namespace, name)
        try:
            body = await self.client.get(EXPERIMENT.api_path(namespace, name))
        except NotFound:
            self.deleting.discard((namespace, name))
            return
        finalizers = [f for f in body["metadata"].get("finalizers") or [] if f != CASCADE_FINALIZER]
        await self._set_finalizers(body["metadata"], finalizers)
        self.deleting.discard((namespace, name))

    async def _set_finalizers(self, meta: dict[str, Any], finalizers: list[str]) -> None:
        try:
            await self.client.patch(EXPERIMENT.api_path(meta["namespace"], meta["name"]), {
                "metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}})
        except (Conflict, NotFound):
            pass  # a newer event of this experiment will bring us back
