"""Waiting for the operator on the real API server, failing with the last status seen."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models.kinds import DPQUERY, QUEUE


async def wait_for_phase(client: KubeClient, namespace: str, name: str, *phases: str,
                         timeout: float = 60, settled: bool = False) -> dict[str, Any]:
    """Poll until the query reaches one of `phases` (and, if `settled`, the operator finished cleaning up)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await client.get(DPQUERY.api_path(namespace, name))
        if (body.get("status") or {}).get("phase") in phases and not (settled and body["metadata"].get("finalizers")):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {phases}: {body.get('status')}")


async def wait_for_reason(client: KubeClient, namespace: str, name: str, reason: str,
                          timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await client.get(DPQUERY.api_path(namespace, name))
        reasons = {c.get("reason") for c in (body.get("status") or {}).get("conditions") or []}
        if reason in reasons:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never had reason {reason}: {body.get('status')}")


async def wait_for_warm_pod(client: KubeClient, system_namespace: str, queue: str, timeout: float = 60) -> None:
    """Poll until the queue reports a warm pod ready to claim a query."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ((await client.get(QUEUE.api_path(system_namespace, queue))).get("status") or {}).get("warm"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"queue {queue} never had a warm pod ready")


async def settled_ledger(budgets: Budgets, user: str, dataset: str, timeout: float = 15) -> L.Ledger:
    """The grant's ledger once it holds no row of a query (an ended query's rows go with the grant's next write,
    within about a second), or as it is after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        ledger = (await budgets.find(user, dataset)).ledger
        if (not ledger.reservations and not ledger.charged) or time.monotonic() > deadline:
            return ledger
        await asyncio.sleep(0.1)
