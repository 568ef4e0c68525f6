"""Dioptra queues are Queue objects in the system namespace; a lock is `spec.locked`, which the operator honours."""

from __future__ import annotations

from typing import Any

from dpkube.api.services.dioptra.catalog import Catalog
from dpkube.api.services.retry import retrying


class Queues(Catalog):
    """Registration, lookups, and lock/unlock (idempotent; lastModified stays, as in Dioptra)."""

    async def unlocked(self) -> list[dict[str, Any]]:
        """What `GET queue/` lists: locked queues are hidden there, yet readable by id and name."""
        return [self.wire(q) for q in await self.all() if not (q.get("spec") or {}).get("locked")]

    async def set_locked(self, name: str, locked: bool) -> dict[str, Any]:
        queue = await self.by_name(name)
        path = self.kind.api_path(self.namespace, queue["metadata"]["name"])
        await retrying(lambda: self.client.patch(path, {"spec": {"locked": locked}}))
        return {"status": "Success", "name": [name]}
