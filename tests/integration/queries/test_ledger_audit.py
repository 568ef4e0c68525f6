"""A reservation left by a query that no longer exists is returned by the operator's audit."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.models.cost import Cost

pytestmark = pytest.mark.usefixtures("operator_process")


async def test_a_reservation_of_a_vanished_query_is_returned(budgets: Budgets) -> None:
    await budgets.grant("leaky", "PENGUIN", epsilon=1.0, delta=0.0)
    name = (await budgets.find("leaky", "PENGUIN")).name
    await budgets.move(name, lambda ledger: L.reserve(ledger, "no-such-query-uid", Cost(epsilon=0.5, delta=0)))
    for _ in range(100):
        if not (await budgets.find("leaky", "PENGUIN")).ledger.reservations:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the stale reservation was never returned")
