"""Concurrent movements on one grant, as racing admissions make them."""

from __future__ import annotations

import asyncio

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.models.cost import Cost


async def reserve_concurrently(budgets: Budgets, grant: str, cost: Cost, count: int) -> int:
    """How many of `count` concurrent reservations of `cost` on `grant` (uids q0, q1, ...) were taken."""

    async def try_reserve(uid: str) -> bool:
        try:
            await budgets.move(grant, lambda ledger: L.reserve(ledger, uid, cost))
            return True
        except L.InsufficientBudget:
            return False

    return sum(await asyncio.gather(*(try_reserve(f"q{i}") for i in range(count))))
