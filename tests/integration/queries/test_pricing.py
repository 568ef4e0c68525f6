"""Pricing runs in worker processes: a query at the nesting limit is priced there beside another user's query."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube_testing.builders import dpquery
from dpkube_testing.waiting import wait_for_phase

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")

AT_THE_LIMITS = ("SELECT COUNT(*) AS n FROM df WHERE " + "(" * 31
                 + " OR ".join(f"(bill_length_mm > {i})" for i in range(90)) + ")" * 31)
"""Within every size and depth limit: the most parsing and rewriting a query may ask of smartnoise-sql."""


async def test_a_query_at_the_limits_is_priced_while_another_users_query_is_admitted(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("patient", "PENGUIN", epsilon=10, delta=0.005)
    await budgets.grant("hasty", "PENGUIN", epsilon=10, delta=0.005)
    await asyncio.gather(
        create(dpquery("deep", user="patient", mode="cost",
                       smartnoiseSql={"queryStr": AT_THE_LIMITS, "epsilon": 0.1, "delta": 1e-5})),
        create(dpquery("quick", user="hasty")))
    quick = await wait_for_phase(admin, namespace, "quick", "Succeeded", "Failed", "Rejected", timeout=120)
    assert quick["status"]["phase"] == "Succeeded"
    deep = await wait_for_phase(admin, namespace, "deep", "Succeeded", "Rejected", timeout=120)
    assert deep["status"]["phase"] == "Succeeded" and deep["status"]["cost"]["epsilon"] == pytest.approx(0.1)
