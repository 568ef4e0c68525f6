"""Pricing runs in worker processes: a query that takes seconds to price holds up nobody else's admission."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models.kinds import DPQUERY
from dpkube_testing.builders import dpquery
from dpkube_testing.waiting import wait_for_phase

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")

SLOW_TO_PRICE = ("SELECT COUNT(*) AS n FROM df WHERE " + "(" * 31
                 + " OR ".join(f"(bill_length_mm > {i})" for i in range(90)) + ")" * 31)
"""Within every size and depth limit, yet seconds of smartnoise-sql's parsing and rewriting."""


async def test_another_users_query_is_admitted_while_a_slow_one_is_priced(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("patient", "PENGUIN", epsilon=10, delta=0.005)
    await budgets.grant("hasty", "PENGUIN", epsilon=10, delta=0.005)
    await create(dpquery("slow", user="patient", mode="cost",
                         smartnoiseSql={"queryStr": SLOW_TO_PRICE, "epsilon": 0.1, "delta": 1e-5}))
    await asyncio.sleep(0.5)  # the slow one is being priced
    await create(dpquery("quick", user="hasty"))
    quick = await wait_for_phase(admin, namespace, "quick", "Admitted", "Running", "Succeeded", "Failed",
                                 "Rejected", timeout=120)
    slow_then = await admin.get(DPQUERY.api_path(namespace, "slow"))
    assert quick["status"]["phase"] in ("Admitted", "Running", "Succeeded")
    assert (slow_then.get("status") or {}).get("phase") is None  # still being priced when the other got in
    slow = await wait_for_phase(admin, namespace, "slow", "Succeeded", "Rejected", timeout=120)
    assert slow["status"]["phase"] == "Succeeded" and slow["status"]["cost"]["epsilon"] == pytest.approx(0.1)
