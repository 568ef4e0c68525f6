"""Experiments and Queues as Dioptra sees them: named objects with integer ids, registered and looked up.

Duplicate names fail atomically at create, because the object name is derived from the Dioptra name.
"""

from __future__ import annotations

from typing import Any

from dpkube.api.errors import DioptraBadRequest
from dpkube.api.services.dioptra import messages
from dpkube.api.services.dioptra.ids import IdAllocator
from dpkube.api.services.dioptra.records import (
    CREATED_ON,
    ID_LABEL,
    LAST_MODIFIED,
    MAX_NAME,
    ORIGIN_LABEL,
    named,
    now,
    object_id,
    object_name,
    slugify,
)
from dpkube.api.services.retry import retrying
from dpkube.k8s.client import Conflict, KubeClient, NotFound
from dpkube.models.crd import API_VERSION, Kind


class Catalog:
    """One kind of named object (`what`: experiment or queue) in one namespace."""

    def __init__(self, client: KubeClient, kind: Kind, namespace: str, ids: IdAllocator, *, what: str,
                 prefix: str, id_key: str, slug_lookups: bool) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.ids = ids
        self.what = what
        self.prefix = prefix
        self.id_key = id_key
        self.slug_lookups = slug_lookups
        """Experiments are looked up by slug (Dioptra slugifies every experiment name); queues exactly."""

    async def register(self, name: str, **spec: Any) -> dict[str, Any]:
        slug = slugify(name)
        if not slug or len(slug) > MAX_NAME:
            raise DioptraBadRequest(f"Bad Request - The {self.what} name must hold 1 to {MAX_NAME} characters.")
        allocated = await self.ids.next(self.what)
        stamp = now()
        body = {
            "apiVersion": API_VERSION, "kind": self.kind.kind,
            "metadata": {
                "name": object_name(self.prefix, slug), "namespace": self.namespace,
                "labels": {ID_LABEL: str(allocated), ORIGIN_LABEL: "dioptra"},
                "annotations": {CREATED_ON: stamp, LAST_MODIFIED: stamp},
            },
            "spec": {"displayName": slug, **spec},
        }
        try:
            created = await retrying(lambda: self.client.create(self.kind.api_path(self.namespace), body))
        except Conflict:
            raise messages.duplicate_name(self.what) from None
        return self.wire(created)

    async def all(self) -> list[dict[str, Any]]:
        """Every object, by id; one made outside Dioptra (kubectl, the Helm chart) gets its id on first sight."""
        items = await retrying(lambda: self.client.list_all(self.kind.api_path(self.namespace)))
        adopted = [item if object_id(item) is not None else await self._adopt(item) for item in items]
        return sorted(adopted, key=lambda item: object_id(item) or 0)

    async def by_id(self, object_id: int) -> dict[str, Any]:
        items = (await retrying(lambda: self.client.list(self.kind.api_path(self.namespace),
                                                         label_selector=f"{ID_LABEL}={object_id}")))["items"]
        if not items:
            raise messages.not_found(self.what)
        return items[0]

    async def by_name(self, name: str) -> dict[str, Any]:
        display = slugify(name) if self.slug_lookups else name
        try:
            found = await retrying(lambda: self.client.get(
                self.kind.api_path(self.namespace, object_name(self.prefix, display))))
            if (found.get("spec") or {}).get("displayName") == display:
                return found
        except NotFound:
            pass
        for item in await retrying(lambda: self.client.list_all(self.kind.api_path(self.namespace))):
            if display in {(item.get("spec") or {}).get("displayName"), item["metadata"]["name"]}:
                return item if object_id(item) is not None else await self._adopt(item)
        raise messages.not_found(self.what)

    async def _adopt(self, item: dict[str, Any]) -> dict[str, Any]:
        """Label an object made outside Dioptra with a fresh id, conditioned on the version read: when two
        facades adopt it at once, one id wins and the other's is a gap."""
        allocated = await self.ids.next(self.what)
        path = self.kind.api_path(self.namespace, item["metadata"]["name"])
        patch = {"metadata": {"resourceVersion": item["metadata"]["resourceVersion"],
                              "labels": {ID_LABEL: str(allocated)}}}
        try:
            return await retrying(lambda: self.client.patch(path, patch))
        except Conflict:
            current = await retrying(lambda: self.client.get(path))
            return current if object_id(current) is not None else await self._adopt(current)

    def wire(self, obj: dict[str, Any]) -> dict[str, Any]:
        return named(obj, self.id_key)
