"""zCDP grants on a real API server: rho is moved by the same compare-and-swap, never overspent, once per uid."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, core_path
from dpkube.models.cost import Cost
from dpkube_testing.ledgers import reserve_concurrently

ZCDP = L.Accounting.ZCDP
GAUSSIAN = Cost(0.1, 1e-5, rho=0.01)


async def test_concurrent_reservations_admit_exactly_the_rho_the_grant_affords(admin: KubeClient,
                                                                              namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("alice", "PENGUIN", None, 1e-5, accounting=ZCDP, rho=0.1)
    name = (await budgets.find("alice", "PENGUIN")).name

    assert await reserve_concurrently(budgets, name, GAUSSIAN, 20) == 10
    ledger = (await budgets.find("alice", "PENGUIN")).ledger
    assert len(ledger.reservations) == 10 and ledger.remaining.rho == pytest.approx(0, abs=1e-12)


async def test_concurrent_charges_of_every_query_charge_each_once(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("bob", "PENGUIN", 1.0, 1e-5, accounting=ZCDP)
    name = (await budgets.find("bob", "PENGUIN")).name
    uids = [f"q{i}" for i in range(5)]
    for uid in uids:
        await budgets.move(name, lambda ledger, uid=uid: L.reserve(ledger, uid, Cost(0.1, 1e-5, rho=0.005)))
    await asyncio.gather(*(budgets.move(name, lambda ledger, uid=uid: L.charge(ledger, uid))
                           for uid in uids for _ in range(4)))
    ledger = (await budgets.find("bob", "PENGUIN")).ledger
    assert ledger.spent_rho == pytest.approx(0.025) and ledger.reservations == {}
    assert set(ledger.charged) == set(uids)


async def test_a_query_without_rho_reserves_nothing_on_a_zcdp_grant(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("carol", "PENGUIN", None, 1e-5, accounting=ZCDP, rho=0.1)
    grant = await budgets.find("carol", "PENGUIN")
    with pytest.raises(L.NotExpressibleInZCDP):
        await budgets.move(grant, lambda ledger: L.reserve(ledger, "q1", Cost(0.1, 0.0)))
    assert (await budgets.find("carol", "PENGUIN")).resource_version == grant.resource_version


async def test_an_epsilon_grant_is_kept_as_the_admin_wrote_it_and_converted_when_read(admin: KubeClient,
                                                                                     namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("dave", "PENGUIN", 1.0, 1e-5, accounting=ZCDP)
    grant = await budgets.find("dave", "PENGUIN")
    stored = await admin.get(core_path("configmaps", namespace, grant.name))
    assert {k: stored["data"][k] for k in ("accounting", "initialEpsilon", "initialDelta")} == {
        "accounting": "zCDP", "initialEpsilon": "1.0", "initialDelta": "1e-05"}
    assert grant.ledger.initial_rho == pytest.approx(0.0306, rel=1e-2)


async def test_regranting_in_rho_replaces_the_epsilon_budget(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("erin", "PENGUIN", 1.0, 1e-5, accounting=ZCDP)
    await budgets.grant("erin", "PENGUIN", None, 1e-5, accounting=ZCDP, rho=0.2)
    assert (await budgets.find("erin", "PENGUIN")).ledger.initial_rho == 0.2


async def test_a_grant_that_spent_epsilon_cannot_be_switched_to_zcdp(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("frank", "PENGUIN", 1.0, 1e-5)
    name = (await budgets.find("frank", "PENGUIN")).name
    await budgets.move(name, lambda ledger: L.charge(L.reserve(ledger, "q1", Cost(0.5, 0.0)), "q1"))
    with pytest.raises(L.InvalidGrant, match="cannot be switched to zCDP"):
        await budgets.grant("frank", "PENGUIN", None, 1e-5, accounting=ZCDP, rho=1.0)
    ledger = (await budgets.find("frank", "PENGUIN")).ledger
    assert (ledger.accounting, ledger.spent.epsilon) == (L.Accounting.APPROX_DP, 0.5)
