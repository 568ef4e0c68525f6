"""Budget routes: the caller's own grant, from a watch-fed cache that never lags the caller's own spend."""

from __future__ import annotations

import asyncio
import time

from dpkube.api.services.budgets import BudgetView
from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets, grant_name
from dpkube.k8s.client import core_path
from dpkube.k8s.informer import Informer
from dpkube.models import examples

from .conftest import CountingClient


async def spend(budgets: Budgets, user: str, epsilon: float, delta: float, uid: str = "q1") -> None:
    """What the operator does when a query's result is released: reserve, then charge."""
    name = grant_name(user, "PENGUIN")
    await budgets.move(name, lambda ledger: L.charge(L.reserve(ledger, uid, L.Cost(epsilon=epsilon, delta=delta)),
                                                      uid))


async def eventually(http, route: str, caller, expected: dict, within: float = 1.0):
    """The route's answer once it equals `expected`, or the last one after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        response = await http.post(route, json=examples.GET_DB_DATA, headers=caller.headers)
        if response.json() == expected or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.01)


async def test_initial_budget_is_the_grant(http, caller) -> None:
    response = await http.post("/get_initial_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert (response.status_code, response.json()) == (200, {"initial_epsilon": 10.0, "initial_delta": 0.005})


async def test_total_spent_budget_starts_at_zero(http, caller) -> None:
    response = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert (response.status_code, response.json()) == (200, {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0})


async def test_remaining_budget_starts_at_the_grant(http, caller) -> None:
    response = await http.post("/get_remaining_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    assert (response.status_code, response.json()) == (200, {"remaining_epsilon": 10.0, "remaining_delta": 0.005})


async def test_remaining_budget_is_initial_minus_spent(http, caller, budgets) -> None:
    await spend(budgets, caller.name, 4.0, 1e-3)
    response = await eventually(http, "/get_remaining_budget", caller, {"remaining_epsilon": 6.0,
                                                                        "remaining_delta": 0.004})
    assert response.json() == {"remaining_epsilon": 6.0, "remaining_delta": 0.004}


async def test_a_budget_marked_stale_by_this_instance_is_read_from_the_api_server(admin, system_namespace, caller,
                                                                                  budgets) -> None:
    frozen = Informer(admin, "/unused")
    frozen.synced_at = time.monotonic()
    frozen.objects = {grant_name(caller.name, "PENGUIN"): await admin.get(
        core_path("configmaps", system_namespace, grant_name(caller.name, "PENGUIN")))}
    view = BudgetView(admin, system_namespace, frozen)
    await spend(budgets, caller.name, 2.0, 0.0)
    assert (await view.ledger(caller.name, "PENGUIN")).spent.epsilon == 0.0
    view.mark_stale(caller.name, "PENGUIN")
    assert (await view.ledger(caller.name, "PENGUIN")).spent.epsilon == 2.0
    assert (await view.ledger(caller.name, "PENGUIN")).spent.epsilon == 2.0


async def frozen_view(admin, system_namespace: str, user: str) -> BudgetView:
    """A view whose watched copy of the user's grant is the stored one now, and never changes."""
    frozen = Informer(admin, "/unused")
    frozen.synced_at = time.monotonic()
    frozen.objects = {grant_name(user, "PENGUIN"): await admin.get(
        core_path("configmaps", system_namespace, grant_name(user, "PENGUIN")))}
    return BudgetView(admin, system_namespace, frozen)


async def test_a_submissions_access_check_reads_the_watched_grant_even_after_the_users_own_spend(
        admin, system_namespace, caller) -> None:
    view = await frozen_view(admin, system_namespace, caller.name)
    view.mark_stale(caller.name, "PENGUIN")
    await admin.delete(core_path("configmaps", system_namespace, grant_name(caller.name, "PENGUIN")))
    assert (await view.for_access(caller.name, "PENGUIN")).may_query


async def test_a_submissions_access_check_never_refuses_on_a_watched_copy_alone(
        admin, system_namespace, caller, budgets) -> None:
    await budgets.grant(caller.name, "PENGUIN", epsilon=10, delta=0.005, may_query=False)
    view = await frozen_view(admin, system_namespace, caller.name)
    await budgets.grant(caller.name, "PENGUIN", epsilon=10, delta=0.005, may_query=True)
    assert (await view.for_access(caller.name, "PENGUIN")).may_query


async def test_a_spend_by_another_instance_reaches_the_cache_within_a_second(http, caller, budgets) -> None:
    await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    await spend(budgets, caller.name, 1.5, 0.0)
    response = await eventually(http, "/get_total_spent_budget", caller, {"total_spent_epsilon": 1.5,
                                                                          "total_spent_delta": 0.0})
    assert response.json() == {"total_spent_epsilon": 1.5, "total_spent_delta": 0.0}


async def test_budget_of_a_dataset_without_a_grant_is_403(http, caller) -> None:
    response = await http.post("/get_initial_budget", json={"dataset_name": "TITANIC"}, headers=caller.headers)
    assert response.status_code == 403
    assert response.json() == {"UnauthorizedAccessException": f"{caller.name} does not have access to TITANIC."}


async def test_budget_of_an_unknown_dataset_is_400_before_access_is_checked(http, caller) -> None:
    response = await http.post("/get_remaining_budget", json={"dataset_name": "NOPE"}, headers=caller.headers)
    assert response.status_code == 400


async def test_budget_reads_are_served_from_the_cache_without_reading_the_api_server(
        counted_http, counting: CountingClient, caller) -> None:
    await counted_http.post("/get_remaining_budget", json=examples.GET_DB_DATA, headers=caller.headers)
    before = len(counting.calls)
    for _ in range(20):
        response = await counted_http.post("/get_remaining_budget", json=examples.GET_DB_DATA, headers=caller.headers)
        assert response.status_code == 200
    assert counting.calls[before:] == []
