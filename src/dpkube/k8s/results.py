"""Results of query pods, kept in Secrets of the query's namespace that users cannot read.

The runner creates them (its service account may only create Secrets); the operator reads them,
charges the budget, and only then publishes the result. A result larger than one object is split
into numbered chunks; the first chunk says how many there are.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from dpkube.k8s.client import KubeClient, NotFound, core_path

RESULT_OF_LABEL = "dpkube.io/result-of"
CHUNK_BYTES = 700_000  # base64 grows it by a third; a Secret holds at most 1 MiB
MAX_CHUNKS = 64


def result_name(uid: str, index: int = 0) -> str:
    return f"dpq-result-{uid}" + (f"-{index}" if index else "")


def _secret(namespace: str, uid: str, index: int, chunk: bytes, chunks: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": result_name(uid, index),
            "namespace": namespace,
            "labels": {RESULT_OF_LABEL: uid},
            "annotations": {"dpkube.io/chunks": str(chunks), "dpkube.io/chunk": str(index)},
        },
        "data": {"result": base64.b64encode(chunk).decode()},
    }


async def write_result(client: KubeClient, namespace: str, uid: str, data: bytes) -> None:
    """Store a runner's output; later chunks first, so a readable first chunk means a complete result."""
    pieces = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    if len(pieces) > MAX_CHUNKS:
        raise ValueError(f"result of {len(data)} bytes exceeds {MAX_CHUNKS * CHUNK_BYTES} bytes")
    for index in reversed(range(len(pieces))):
        await client.create(core_path("secrets", namespace), _secret(namespace, uid, index, pieces[index], len(pieces)))


async def read_result(client: KubeClient, namespace: str, uid: str) -> bytes | None:
    """The stored output of query `uid`, or None when the runner wrote none."""
    try:
        first = await client.get(core_path("secrets", namespace, result_name(uid)))
    except NotFound:
        return None
    if first["metadata"].get("labels", {}).get(RESULT_OF_LABEL) != uid:
        return None
    chunks = int(first["metadata"].get("annotations", {}).get("dpkube.io/chunks", "1"))
    parts = [base64.b64decode(first.get("data", {}).get("result", ""))]
    for index in range(1, min(chunks, MAX_CHUNKS)):
        secret = await client.get(core_path("secrets", namespace, result_name(uid, index)))
        parts.append(base64.b64decode(secret.get("data", {}).get("result", "")))
    return b"".join(parts)


async def delete_result(client: KubeClient, namespace: str, uid: str) -> None:
    """Remove every chunk of a result (idempotent)."""
    for item in await client.list_all(core_path("secrets", namespace), label_selector=f"{RESULT_OF_LABEL}={uid}"):
        with contextlib.suppress(NotFound):
            await client.delete(core_path("secrets", namespace, item["metadata"]["name"]))


class SecretSink:
    """The runner's output sink in a pod: a result Secret, written with the pod's own service account."""

    def __init__(self, namespace: str, uid: str):
        self.namespace = namespace
        self.uid = uid

    def write(self, output: Any) -> None:
        import asyncio

        from dpkube.k8s.client import KubeConfig

        data = output.model_dump_json(by_alias=False).encode()

        async def store() -> None:
            async with KubeClient(KubeConfig.in_cluster()) as client:
                await write_result(client, self.namespace, self.uid, data)

        asyncio.run(store())
