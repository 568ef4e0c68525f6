"""Installs dpkube's CRDs into an API server and waits until they are served."""

from __future__ import annotations

import asyncio
import time

from dpkube.k8s.client import KubeClient, NotFound
from dpkube.models.kinds import KINDS

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def apply_crds(client: KubeClient, *, timeout: float = 30.0) -> None:
    """Create or update every CRD, then wait for each to be Established."""
    for kind in KINDS:
        manifest = kind.crd()
        path = f"{CRD_PATH}/{kind.crd_name}"
        try:
            current = await client.get(path)
        except NotFound:
            await client.create(CRD_PATH, manifest)
        else:
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await client.replace(path, manifest)
    deadline = time.monotonic() + timeout
    for kind in KINDS:
        while True:
            crd = await client.get(f"{CRD_PATH}/{kind.crd_name}")
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {kind.crd_name} not established after {timeout:.0f}s")
            await asyncio.sleep(0.05)
