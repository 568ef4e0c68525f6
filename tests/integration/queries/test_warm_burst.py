"""The warm path under load: eight users in a closed loop through a queue with a warm pool. Every query ends,
each in a pod of its own that served no other query, and every user's books add up. Timing is the
benchmark's (bench/lomas.py), not ours."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube_testing.builders import dpquery, queue
from dpkube_testing.waiting import settled_ledger, wait_for_phase

pytestmark = [pytest.mark.usefixtures("operator_process", "node_agent"), pytest.mark.slow]

USERS = [f"loop-{n}" for n in range(8)]
QUERIES_PER_USER = 25


async def test_eight_users_through_a_warm_pool_each_get_a_pod_per_query_and_the_books_add_up(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    name = f"warm-burst-{namespace}"
    await create(queue(name, warmPods=2, warmPodsMax=8, warmLibraries=["smartnoise-sql"]))
    for user in USERS:
        await budgets.grant(user, "PENGUIN", epsilon=100, delta=0.5)

    async def closed_loop(user: str) -> list[dict]:
        ended = []
        for n in range(QUERIES_PER_USER):
            await create(dpquery(f"{user}-{n:02d}", user=user, queue=name))
            ended.append(await wait_for_phase(admin, namespace, f"{user}-{n:02d}", "Succeeded", "Failed",
                                              "Rejected", timeout=120, settled=True))
        return ended

    by_user = dict(zip(USERS, await asyncio.gather(*(closed_loop(user) for user in USERS)), strict=True))
    ended = [body for bodies in by_user.values() for body in bodies]
    assert {body["status"]["phase"] for body in ended} == {"Succeeded"}
    pods = [body["status"]["podName"] for body in ended]
    assert len(set(pods)) == len(ended) == len(USERS) * QUERIES_PER_USER  # no pod served two queries
    assert any(pod.startswith("dpq-warm-") for pod in pods)  # the warm pool took part
    for user, bodies in by_user.items():
        ledger = await settled_ledger(budgets, user, "PENGUIN")
        assert ledger.reservations == {} and ledger.charged == {}
        assert ledger.spent.epsilon == pytest.approx(sum(body["status"]["spent"]["epsilon"] for body in bodies))
