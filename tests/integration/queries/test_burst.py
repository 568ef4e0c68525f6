"""A burst of queries through one Queue and around it: every query ends, a queue admits in FIFO order, the
books add up, and nothing is priced or admitted twice. Timing is the benchmark's (bench/scale.py), not ours."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, core_path
from dpkube_testing.builders import dpquery, queue
from dpkube_testing.metrics import operator_counter
from dpkube_testing.waiting import settled_ledger, wait_for_phase

pytestmark = [pytest.mark.usefixtures("operator_process", "node_agent"), pytest.mark.slow]

COST_QUERIES = 240
QUEUED_QUERIES = 24


def where(index: int) -> dict:
    return {"queryStr": f"SELECT COUNT(*) AS n FROM df WHERE bill_length_mm > {index}", "epsilon": 0.1,
            "delta": 1e-5}


async def test_a_burst_ends_every_query_in_fifo_order_with_the_books_right(
    admin: KubeClient, namespace: str, budgets: Budgets, create, platform_env: dict[str, str]
) -> None:
    await budgets.grant("burst", "PENGUIN", epsilon=100, delta=0.5)
    await create(queue(f"burst-{namespace}", maxConcurrent=2))
    priced_before = await operator_counter(platform_env, "dpkube_operator_pricings", namespace)
    admitted_before = await operator_counter(platform_env, "dpkube_operator_admissions", namespace)
    queued = [f"queued-{i:03d}" for i in range(QUEUED_QUERIES)]
    for index, name in enumerate(queued):  # one after the other: their order is the queue's order
        await create(dpquery(name, user="burst", queue=f"burst-{namespace}", smartnoiseSql=where(index)))
    costs = [f"cost-{i:03d}" for i in range(COST_QUERIES)]
    await asyncio.gather(*(create(dpquery(name, user="burst", mode="cost", smartnoiseSql=where(i)))
                           for i, name in enumerate(costs)))

    ended = {name: await wait_for_phase(admin, namespace, name, "Succeeded", "Failed", "Rejected", timeout=600,
                                        settled=True) for name in [*costs, *queued]}
    assert {body["status"]["phase"] for body in ended.values()} == {"Succeeded"}
    serials = [ended[name]["status"]["queueSerial"] for name in queued]
    assert serials == sorted(serials) and len(set(serials)) == QUEUED_QUERIES

    ledger = await settled_ledger(budgets, "burst", "PENGUIN")
    assert ledger.reservations == {} and ledger.charged == {}
    assert ledger.spent.epsilon == pytest.approx(sum(ended[n]["status"]["spent"]["epsilon"] for n in queued))
    assert all(ended[n]["status"]["spent"]["epsilon"] == 0 for n in costs)

    priced = await operator_counter(platform_env, "dpkube_operator_pricings", namespace) - priced_before
    admitted = await operator_counter(platform_env, "dpkube_operator_admissions", namespace) - admitted_before
    assert (priced, admitted) == (len(ended), QUEUED_QUERIES)
    events = await admin.list_all(core_path("events", namespace), field_selector="reason=Admitted")
    per_query = [e["involvedObject"]["name"] for e in events if e["involvedObject"]["name"] in queued]
    assert sorted(per_query) == queued  # one Admitted event each
