"""A waiting query knows its place in its queue (kueue#1657): FIFO behind a lock and a concurrency cap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube_testing.builders import dpquery, queue

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")


async def positions(admin: KubeClient, namespace: str, names: list[str]) -> list[Any]:
    return [((await admin.get(DPQUERY.api_path(namespace, n))).get("status") or {}).get("queuePosition")
            for n in names]


async def until_positions(admin: KubeClient, namespace: str, names: list[str], expected: list[Any]) -> None:
    seen: list[Any] = []
    for _ in range(300):
        seen = await positions(admin, namespace, names)
        if seen == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"positions {seen}, expected {expected}")


async def test_waiting_queries_show_their_place_behind_a_lock_and_a_cap(
    admin: KubeClient, namespace: str, budgets: Budgets, create, system_namespace: str
) -> None:
    await budgets.grant("waiter", "PENGUIN", epsilon=10, delta=0.005)
    name = f"line-{namespace}"
    await create(queue(name, locked=True, maxConcurrent=1))
    names = ["first", "second", "third"]
    for query in names:
        await create(dpquery(query, user="waiter", queue=name))
    await until_positions(admin, namespace, names, [1, 2, 3])

    await admin.patch(QUEUE.api_path(system_namespace, name), {"spec": {"locked": False}})
    for _ in range(1800):  # one at a time through the cap: the places of those still waiting keep FIFO order
        bodies = [await admin.get(DPQUERY.api_path(namespace, n)) for n in names]
        waiting = [b["status"].get("queuePosition") for b in bodies if b["status"].get("phase") == "Pending"]
        assert waiting == sorted(waiting), waiting
        if all(b["status"].get("phase") == "Succeeded" for b in bodies):
            break
        await asyncio.sleep(0.1)
    for body in bodies:
        assert body["status"]["phase"] == "Succeeded" and "queuePosition" not in body["status"]
