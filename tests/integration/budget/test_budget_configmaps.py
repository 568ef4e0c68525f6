"""Budget movements on a real API server: compare-and-swap keeps the books exact under contention."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets, GrantNotFound, grant_manifest
from dpkube.k8s.client import KubeClient, KubeConfig, NotFound, core_path
from dpkube.models.cost import Cost
from dpkube_testing.ledgers import reserve_concurrently


async def test_concurrent_reservations_admit_exactly_what_the_grant_affords(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("alice", "PENGUIN", epsilon=1.0, delta=0.0)
    name = (await budgets.find("alice", "PENGUIN")).name
    cost = Cost(epsilon=0.1, delta=0.0)

    assert await reserve_concurrently(budgets, name, cost, 30) == 10
    ledger = (await budgets.find("alice", "PENGUIN")).ledger
    assert len(ledger.reservations) == 10 and ledger.remaining.epsilon == pytest.approx(0, abs=1e-9)


async def test_concurrent_charges_of_one_query_charge_it_once(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("bob", "PENGUIN", epsilon=5.0, delta=0.01)
    name = (await budgets.find("bob", "PENGUIN")).name
    await budgets.move(name, lambda ledger: L.reserve(ledger, "q1", Cost(epsilon=2, delta=1e-5)))
    await asyncio.gather(*(budgets.move(name, lambda ledger: L.charge(ledger, "q1")) for _ in range(8)))
    ledger = (await budgets.find("bob", "PENGUIN")).ledger
    assert ledger.spent == Cost(epsilon=2, delta=1e-5) and ledger.reservations == {}


async def test_a_grant_applied_by_an_admin_under_any_name_is_found(admin: KubeClient, namespace: str) -> None:
    manifest = grant_manifest(namespace, "Dr. Antartica", "PENGUIN", 10, 0.005)
    manifest["metadata"]["name"] = "antartica-penguin"
    await admin.create(core_path("configmaps", namespace), manifest)
    found = await Budgets(admin, namespace).find("Dr. Antartica", "PENGUIN")
    assert found.name == "antartica-penguin" and found.ledger.initial == Cost(epsilon=10, delta=0.005)


async def test_no_grant_means_no_access(admin: KubeClient, namespace: str) -> None:
    with pytest.raises(GrantNotFound, match=r"carol does not have access to IRIS\."):
        await Budgets(admin, namespace).find("carol", "IRIS")


async def test_regranting_keeps_what_was_spent(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("alice", "TITANIC", epsilon=1.0, delta=0.0)
    name = (await budgets.find("alice", "TITANIC")).name
    await budgets.move(name, lambda ledger: L.charge(L.reserve(ledger, "q1", Cost(epsilon=0.5, delta=0)), "q1"))
    await budgets.grant("alice", "TITANIC", epsilon=3.0, delta=0.0)
    ledger = (await budgets.find("alice", "TITANIC")).ledger
    assert ledger.initial.epsilon == 3.0 and ledger.spent.epsilon == 0.5


async def test_a_grant_is_never_taken_by_its_name_alone(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    forged = grant_manifest(namespace, "alice", "PENGUIN", epsilon=100, delta=0.1)
    forged["data"]["user"] = "mallory"  # named for alice, but it says it is mallory's
    await admin.create(core_path("configmaps", namespace), forged)
    with pytest.raises(GrantNotFound):
        await budgets.find("alice", "PENGUIN")


async def test_a_grant_remembered_from_an_earlier_movement_is_moved_on_what_is_stored(
        admin: KubeClient, namespace: str) -> None:
    ours, theirs = Budgets(admin, namespace), Budgets(admin, namespace)
    await ours.grant("dave", "PENGUIN", epsilon=1.0, delta=0.0)
    await ours.move(await ours.find_to_move("dave", "PENGUIN"),
                    lambda ledger: L.reserve(ledger, "q1", Cost(epsilon=0.5, delta=0.0)))
    await theirs.move(await theirs.find("dave", "PENGUIN"),
                      lambda ledger: L.reserve(ledger, "q2", Cost(epsilon=0.5, delta=0.0)))

    remembered = await ours.find_to_move("dave", "PENGUIN")
    assert "q2" not in remembered.ledger.reservations  # this process has not seen the other writer's movement
    with pytest.raises(L.BudgetError):
        await ours.move(remembered, lambda ledger: L.reserve(ledger, "q3", Cost(epsilon=0.5, delta=0.0)))
    assert set((await theirs.find("dave", "PENGUIN")).ledger.reservations) == {"q1", "q2"}


async def test_a_remembered_grant_that_was_deleted_moves_nothing_and_is_then_not_found(
        admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    await budgets.grant("erin", "PENGUIN", epsilon=1.0, delta=0.0)
    grant = await budgets.find_to_move("erin", "PENGUIN")
    await budgets.move(grant, lambda ledger: L.reserve(ledger, "q1", Cost(epsilon=0.1, delta=0.0)))
    await admin.delete(core_path("configmaps", namespace, grant.name))

    with pytest.raises(NotFound):
        await budgets.move(await budgets.find_to_move("erin", "PENGUIN"),
                           lambda ledger: L.reserve(ledger, "q2", Cost(epsilon=0.1, delta=0.0)))
    with pytest.raises(GrantNotFound):
        await budgets.find_to_move("erin", "PENGUIN")


async def charged_query(budgets: Budgets, user: str, uid: str) -> str:
    """A grant of `user` on which query `uid` was reserved and charged, as a release leaves it; its name."""
    await budgets.grant(user, "PENGUIN", epsilon=5.0, delta=0.01)
    name = (await budgets.find(user, "PENGUIN")).name
    await budgets.move(name, lambda ledger: L.charge(L.reserve(ledger, uid, Cost(epsilon=1, delta=1e-5)), uid))
    return name


async def test_an_ended_querys_rows_go_with_the_grants_next_movement(kube_config: KubeConfig, namespace: str) -> None:
    requests: list[str] = []
    async with KubeClient(kube_config, observe=lambda method, path: requests.append(method)) as client:
        budgets = Budgets(client, namespace)
        name = await charged_query(budgets, "erin", "q1")
        budgets.settle_later(name, "q1")
        requests.clear()
        await budgets.move(name, lambda ledger: L.reserve(ledger, "q2", Cost(epsilon=1, delta=1e-5)))
        writes = [method for method in requests if method != "GET"]
        after = await budgets.find("erin", "PENGUIN")
    assert after.ledger.charged == {} and set(after.ledger.reservations) == {"q2"}
    assert after.ledger.spent == Cost(epsilon=1, delta=1e-5)
    assert len(writes) == 1  # one write carried both (the API server's resourceVersion counts every object's writes)


async def test_settlements_that_no_movement_carries_are_written_by_a_flush(admin: KubeClient, namespace: str) -> None:
    budgets = Budgets(admin, namespace)
    name = await charged_query(budgets, "fred", "q1")
    budgets.settle_later(name, "q1")
    await budgets.flush_settled()
    ledger = (await budgets.find("fred", "PENGUIN")).ledger
    assert ledger.charged == {} and ledger.spent == Cost(epsilon=1, delta=1e-5)

