"""Writes to DPQuery objects: the whole status at once, and the operator's finalizer.

A status is written whole as a JSON patch (a merge patch would delete every null inside a result),
and the finalizer changes are conditioned on the resourceVersion read, so no write undoes another.
"""

from __future__ import annotations

from typing import Any

from dpkube.k8s.client import Conflict, KubeClient, NotFound
from dpkube.models.kinds import DPQUERY

MAX_ATTEMPTS = 10


def path_of(query: dict[str, Any]) -> str:
    meta = query["metadata"]
    return DPQUERY.api_path(meta["namespace"], meta["name"])


async def write_status(client: KubeClient, query: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """Replace the query's status; the object as stored afterwards (the input, updated, if it is gone)."""
    try:
        return await client.patch(path_of(query) + "/status", [{"op": "add", "path": "/status", "value": status}],
                                  kind="json")
    except NotFound:
        return {**query, "status": status}


async def add_finalizer(client: KubeClient, query: dict[str, Any], finalizer: str) -> dict[str, Any]:
    """The query with `finalizer` on it (a conditioned patch; a conflict means it changed: read and retry)."""
    for _ in range(MAX_ATTEMPTS):
        finalizers = list(query["metadata"].get("finalizers") or [])
        if finalizer in finalizers:
            return query
        try:
            return await client.patch(path_of(query), {"metadata": {
                "finalizers": [*finalizers, finalizer], "resourceVersion": query["metadata"]["resourceVersion"]}})
        except Conflict:
            query = await client.get(path_of(query))
    raise Conflict(409, "Conflict", f"query {query['metadata']['name']} kept changing")


async def remove_finalizer(client: KubeClient, query: dict[str, Any], finalizer: str) -> dict[str, Any] | None:
    """Take `finalizer` off the query: the query as it is then, None when it is gone (idempotent). The patch
    is conditioned on the version given; a conflict means it changed: read and retry."""
    path = path_of(query)
    current = query
    for _ in range(MAX_ATTEMPTS):
        finalizers = list(current["metadata"].get("finalizers") or [])
        if finalizer not in finalizers:
            return current
        try:
            return await client.patch(path, {"metadata": {"finalizers": [f for f in finalizers if f != finalizer],
                                                          "resourceVersion": current["metadata"]["resourceVersion"]}})
        except NotFound:
            return None
        except Conflict:
            pass
        try:
            current = await client.get(path)
        except NotFound:
            return None
    raise Conflict(409, "Conflict", f"query {query['metadata']['name']} kept changing")
