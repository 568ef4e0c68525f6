"""Released results: inline in a DPQuery's status when small, else in ConfigMaps the query owns.

Only the operator writes them, after the charge; the facade and the CLI read them. A result larger
than one ConfigMap is split into numbered chunks (NAME, NAME-1, NAME-2, ...) named in status.resultRef.
"""

from __future__ import annotations

import json
from typing import Any

from dpkube.k8s.client import Conflict, KubeClient, core_path
from dpkube.models.dpquery import ResultRef

CHUNK_CHARS = 900_000
"""A ConfigMap holds at most 1 MiB; this leaves room for its metadata."""
KEY = "result.json"


def chunk_name(base: str, index: int) -> str:
    return base if index == 0 else f"{base}-{index}"


def result_config_map(uid: str) -> str:
    return f"dpq-{uid}-result"


async def publish(client: KubeClient, query: dict[str, Any], response: Any, inline_max_bytes: int
                  ) -> tuple[Any, ResultRef | None]:
    """Store a released result: (inline value, None) when small, else (None, where the chunks are)."""
    text = json.dumps(response)
    if len(text) <= inline_max_bytes:
        return response, None
    meta = query["metadata"]
    base = result_config_map(meta["uid"])
    pieces = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    owner = {"apiVersion": query["apiVersion"], "kind": "DPQuery", "name": meta["name"], "uid": meta["uid"]}
    for index, piece in enumerate(pieces):
        name = chunk_name(base, index)
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [owner]},
                "data": {KEY: piece}}
        try:
            await client.create(core_path("configmaps", meta["namespace"]), body)
        except Conflict:
            await client.replace(core_path("configmaps", meta["namespace"], name), body)
    return None, ResultRef(config_map=base, key=KEY, chunks=len(pieces))


async def read_published(client: KubeClient, query: dict[str, Any]) -> Any:
    """The released result of a query: inline in its status, or the text of its chunks, in order."""
    status = query.get("status") or {}
    raw = status.get("resultRef")
    if not raw:
        return status.get("result")
    ref = ResultRef.model_validate(raw)
    namespace = query["metadata"]["namespace"]
    parts = []
    for index in range(ref.chunks):
        found = await client.get(core_path("configmaps", namespace, chunk_name(ref.config_map, index)))
        parts.append((found.get("data") or {}).get(ref.key, ""))
    return json.loads("".join(parts))
