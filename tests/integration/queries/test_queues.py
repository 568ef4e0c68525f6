"""Queues on the real platform: concurrency caps, FIFO order, locks that admit nothing new, warm pods."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube.operator.scheduler import HEADS_PER_LINE
from dpkube_testing.builders import dpquery, queue
from dpkube_testing.metrics import operator_counter
from dpkube_testing.waiting import settled_ledger, wait_for_phase, wait_for_reason, wait_for_warm_pod

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")
SYSTEM = "dpkube-system"


async def test_max_concurrent_caps_running_queries_and_keeps_fifo_order(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("fifo", "PENGUIN", epsilon=10, delta=0.005)
    name = f"one-{namespace}"
    await create(queue(name, maxConcurrent=1, locked=True))
    await asyncio.sleep(0.5)  # the operator has seen the lock before the queries come
    for n in range(4):
        await create(dpquery(f"q{n}", user="fifo", queue=name))
        await asyncio.sleep(1.05)  # creationTimestamp has a one-second resolution
    for n in range(4):
        await wait_for_reason(admin, namespace, f"q{n}", "QueueLocked")
    await admin.patch(QUEUE.api_path(SYSTEM, name), {"spec": {"locked": False}})  # all four want to run now
    most_active = 0
    for _ in range(1200):
        items = (await admin.list(DPQUERY.api_path(namespace)))["items"]
        phases = [(q.get("status") or {}).get("phase") for q in items]
        most_active = max(most_active, sum(p in ("Admitted", "Running") for p in phases))
        if all(p == "Succeeded" for p in phases):
            break
        await asyncio.sleep(0.02)
    assert most_active <= 1 and all(p == "Succeeded" for p in phases)
    admitted = sorted(items, key=lambda q: q["status"]["queueSerial"])
    assert [q["metadata"]["name"] for q in admitted] == ["q0", "q1", "q2", "q3"]


async def test_an_open_queues_backlog_longer_than_a_line_is_admitted_in_fifo_order(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("backlog", "PENGUIN", epsilon=100, delta=0.5)
    name = f"backlog-{namespace}"
    await create(queue(name, locked=True))
    await asyncio.sleep(0.5)  # the operator has seen the lock before the queries come
    names = [f"b{n:03d}" for n in range(HEADS_PER_LINE + 42)]  # two lines: the second starts before the first ends
    for query in names:  # one after the other: creation time, then name, is the queue's order
        await create(dpquery(query, user="backlog", queue=name))
    for query in names:
        await wait_for_reason(admin, namespace, query, "QueueLocked")
    await admin.patch(QUEUE.api_path(SYSTEM, name), {"spec": {"locked": False}})

    ended = [await wait_for_phase(admin, namespace, query, "Succeeded", "Failed", timeout=600, settled=True)
             for query in names]
    assert {body["status"]["phase"] for body in ended} == {"Succeeded"}
    serials = [body["status"]["queueSerial"] for body in ended]
    assert serials == sorted(serials) and len(set(serials)) == len(names)
    ledger = await settled_ledger(budgets, "backlog", "PENGUIN")
    assert ledger.reservations == {} and ledger.charged == {}
    assert ledger.spent.epsilon == pytest.approx(sum(body["status"]["spent"]["epsilon"] for body in ended))


async def test_a_locked_queue_s_backlog_is_priced_only_once_the_queue_opens(
    admin: KubeClient, namespace: str, budgets: Budgets, create, platform_env: dict[str, str]
) -> None:
    await budgets.grant("held", "PENGUIN", epsilon=10, delta=0.005)
    name = f"held-{namespace}"
    await create(queue(name, locked=True))
    await asyncio.sleep(0.5)  # the operator has seen the lock before the queries come
    for n in range(3):
        await create(dpquery(f"h{n}", user="held", queue=name))
    for n in range(3):
        await wait_for_reason(admin, namespace, f"h{n}", "QueueLocked")
    assert await operator_counter(platform_env, "dpkube_operator_pricings", namespace) == 0
    await admin.patch(QUEUE.api_path(SYSTEM, name), {"spec": {"locked": False}})
    for n in range(3):
        await wait_for_phase(admin, namespace, f"h{n}", "Succeeded", timeout=120)
    assert await operator_counter(platform_env, "dpkube_operator_pricings", namespace) == 3


async def test_no_query_is_admitted_after_its_queue_is_locked(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("racer", "PENGUIN", epsilon=10, delta=0.005)
    name = f"race-{namespace}"
    await create(queue(name))
    creating = asyncio.gather(*(create(dpquery(f"r{n}", user="racer", queue=name)) for n in range(20)))
    await asyncio.sleep(0.3)
    locked = await admin.patch(QUEUE.api_path(SYSTEM, name), {"spec": {"locked": True}})
    await creating
    serial_at_lock = (locked.get("status") or {}).get("admissionSerial", 0)
    await asyncio.sleep(3)
    items = (await admin.list(DPQUERY.api_path(namespace)))["items"]
    admitted = [q for q in items if (q.get("status") or {}).get("admittedAt")]
    waiting = [q for q in items if (q.get("status") or {}).get("phase") in (None, "Pending")]
    assert len(admitted) <= serial_at_lock
    assert len(admitted) + len(waiting) == 20
    await admin.patch(QUEUE.api_path(SYSTEM, name), {"spec": {"locked": False}})
    for q in items:
        await wait_for_phase(admin, namespace, q["metadata"]["name"], "Succeeded", timeout=120)


async def test_a_warm_pod_claims_a_query_of_its_queue(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("warm", "PENGUIN", epsilon=10, delta=0.005)
    name = f"warm-{namespace}"
    await create(queue(name, warmPods=1, warmLibraries=["smartnoise-sql"]))
    await create(dpquery("starter", user="warm", queue=name, mode="cost"))
    await wait_for_warm_pod(admin, SYSTEM, name)
    await create(dpquery("hot", user="warm", queue=name))
    body = await wait_for_phase(admin, namespace, "hot", "Succeeded", "Failed", timeout=60)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["podName"].startswith("dpq-warm-")
