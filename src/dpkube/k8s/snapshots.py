"""Metadata snapshots: the metadata a query was priced on, kept until its pod runs on that same version.

An admin may change a Dataset's metadata (max_ids, bounds) while queries are in flight; each query
records the sha256 of the metadata that priced it, and its runner gets exactly that snapshot. A snapshot
is an immutable ConfigMap in the operator's namespace, named after its digest, shared by every query
priced on it.
"""

from __future__ import annotations

from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.k8s.datasets import metadata_digest
from dpkube.models.metadata import Metadata

KEY = "metadata.json"
LABEL = "dpkube.io/metadata-snapshot"
CACHE_LIMIT = 256


class SnapshotMissing(Exception):
    """The snapshot a query was priced on is gone (deleted by hand): the query cannot run as priced."""


def snapshot_name(digest: str) -> str:
    return f"dpkube-metadata-{digest[:32]}"


class Snapshots:
    """Stores and reads snapshots, remembering the ones this process has seen."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._known: dict[str, Metadata] = {}

    async def keep(self, metadata: Metadata, digest: str | None = None) -> str:
        """Store `metadata` (once) and return its digest (`digest`, when the caller has it already)."""
        digest = digest or metadata_digest(metadata)
        if digest not in self._known:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "immutable": True,
                    "metadata": {"name": snapshot_name(digest), "namespace": self.namespace,
                                 "labels": {LABEL: "true", "app.kubernetes.io/managed-by": "dpkube"}},
                    "data": {KEY: metadata.model_dump_json(by_alias=True)}}
            try:
                await self.client.create(core_path("configmaps", self.namespace), body)
            except Conflict:
                pass
            self._remember(digest, metadata)
        return digest

    async def get(self, digest: str) -> Metadata:
        if digest not in self._known:
            try:
                body = await self.client.get(core_path("configmaps", self.namespace, snapshot_name(digest)))
            except NotFound:
                raise SnapshotMissing(f"metadata snapshot {digest[:12]} is missing") from None
            metadata = Metadata.model_validate_json((body.get("data") or {}).get(KEY, "{}"))
            if metadata_digest(metadata) != digest:
                raise SnapshotMissing(f"metadata snapshot {digest[:12]} does not match its digest")
            self._remember(digest, metadata)
        return self._known[digest]

    def _remember(self, digest: str, metadata: Metadata) -> None:
        if len(self._known) >= CACHE_LIMIT:
            self._known.pop(next(iter(self._known)))
        self._known[digest] = metadata
