"""A budget is money: under contention and operator crashes, exactly the affordable queries run, once each.

These run the whole platform (operator process, node agent, runner pods) on the real API server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest

from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.pods import QUERY_UID_LABEL
from dpkube.models.dpquery import TERMINAL_PHASES
from dpkube.models.kinds import DPQUERY
from dpkube_testing.builders import dpquery
from dpkube_testing.waiting import settled_ledger

pytestmark = [pytest.mark.usefixtures("operator_process", "node_agent"), pytest.mark.slow]
TERMINAL = {phase.value for phase in TERMINAL_PHASES}


async def all_terminal(client: KubeClient, namespace: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    items: list[dict] = []
    while time.monotonic() < deadline:
        items = (await client.list(DPQUERY.api_path(namespace)))["items"]
        if len(items) == count and all((q.get("status") or {}).get("phase") in TERMINAL
                                       and not q["metadata"].get("finalizers") for q in items):
            return items
        await asyncio.sleep(0.2)
    phases = defaultdict(int)
    for q in items:
        phases[(q.get("status") or {}).get("phase")] += 1
    raise AssertionError(f"not all queries ended: {dict(phases)}")


class PodLedger:
    """Watches pods and remembers every pod object ever created for each query uid."""

    def __init__(self) -> None:
        self.pods: dict[str, set[str]] = defaultdict(set)

    async def follow(self, client: KubeClient, namespace: str) -> None:
        while True:
            try:
                async for event in client.watch(core_path("pods", namespace), timeout_seconds=60):
                    meta = event["object"]["metadata"]
                    uid = (meta.get("labels") or {}).get(QUERY_UID_LABEL)
                    if uid:
                        self.pods[uid].add(meta["uid"])
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.1)


async def test_fifty_queries_from_five_users_spend_exactly_what_is_affordable(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    users = [f"racer-{i}" for i in range(5)]
    for user in users:
        await budgets.grant(user, "PENGUIN", epsilon=0.45, delta=0.005)
    await asyncio.gather(*(create(dpquery(f"{user}-{n}", user=user)) for user in users for n in range(10)))
    queries = await all_terminal(admin, namespace, 50, timeout=240)
    for user in users:
        mine = [q for q in queries if q["spec"]["user"] == user]
        succeeded = [q for q in mine if q["status"]["phase"] == "Succeeded"]
        rejected = [q for q in mine if q["status"]["phase"] == "Rejected"]
        assert len(succeeded) == 4 and len(rejected) == 6, [q["status"].get("message") for q in mine]
        assert {q["status"]["conditions"][-1]["reason"] for q in rejected} == {"InsufficientBudget"}
        ledger = (await budgets.find(user, "PENGUIN")).ledger
        assert ledger.spent.epsilon == pytest.approx(sum(q["status"]["spent"]["epsilon"] for q in succeeded))
        assert ledger.spent.epsilon <= ledger.initial.epsilon
        assert ledger.reservations == {}


async def test_an_operator_killed_at_random_moments_charges_every_release_once(
    admin: KubeClient, namespace: str, budgets: Budgets, create, operator_process: ChildProcess
) -> None:
    users = [f"crash-{i}" for i in range(3)]
    for user in users:
        await budgets.grant(user, "PENGUIN", epsilon=0.75, delta=0.005)
    watcher = PodLedger()
    follow = asyncio.create_task(watcher.follow(admin, namespace))
    await asyncio.sleep(0.2)
    try:
        await asyncio.gather(*(create(dpquery(f"{user}-{n}", user=user)) for user in users for n in range(10)))
        rng = random.Random(1651)
        for _ in range(5):
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            operator_process.kill()
            operator_process.start()
        queries = await all_terminal(admin, namespace, 30, timeout=300)
    finally:
        follow.cancel()
    assert all(len(pods) == 1 for pods in watcher.pods.values()), dict(watcher.pods)
    for user in users:
        mine = [q for q in queries if q["spec"]["user"] == user]
        succeeded = [q for q in mine if q["status"]["phase"] == "Succeeded"]
        ledger = await settled_ledger(budgets, user, "PENGUIN")
        assert ledger.spent.epsilon == pytest.approx(sum(q["status"]["spent"]["epsilon"] for q in succeeded))
        assert ledger.spent.epsilon <= ledger.initial.epsilon + 1e-12
        assert ledger.reservations == {} and ledger.charged == {}
        assert all(q["status"]["phase"] in ("Succeeded", "Rejected") for q in mine), \
            [(q["metadata"]["name"], q["status"]["phase"], q["status"].get("message")) for q in mine]
