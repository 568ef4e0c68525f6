"""An experiment's cap holds under concurrent queries: what it lets through is charged once, on the cap and the
grant alike, and the rest is Rejected in the cap's words.

These run the whole platform (operator process, node agent, runner pods) on the real API server.
"""

from __future__ import annotations

import asyncio

import pytest

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import CapKey, cap_name
from dpkube.k8s.client import KubeClient, core_path
from dpkube.models.kinds import EXPERIMENT
from dpkube_testing.builders import dpquery, experiment
from dpkube_testing.waiting import settled_ledger

from .test_budget_safety import all_terminal
from .test_experiments import wait_until_gone

pytestmark = [pytest.mark.usefixtures("operator_process", "node_agent"), pytest.mark.slow]


async def test_twenty_concurrent_queries_spend_no_more_than_the_experiments_cap(
    admin: KubeClient, namespace: str, system_namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("capped", "PENGUIN", epsilon=10, delta=0.005)
    await create(experiment("capped-study", budget={"epsilon": 0.45, "delta": 0.001}))
    await asyncio.gather(*(create(dpquery(f"capped-{n}", user="capped", experiment="capped-study"))
                           for n in range(20)))
    queries = await all_terminal(admin, namespace, 20, timeout=240)
    succeeded = [q for q in queries if q["status"]["phase"] == "Succeeded"]
    rejected = [q for q in queries if q["status"]["phase"] == "Rejected"]
    assert len(succeeded) == 4 and len(rejected) == 16, [q["status"].get("message") for q in queries]
    assert {q["status"]["conditions"][-1]["reason"] for q in rejected} == {"ExperimentBudgetExceeded"}
    cap = L.from_data((await admin.get(core_path(
        "configmaps", system_namespace, cap_name(CapKey(namespace, "capped-study", "capped", "PENGUIN")))))["data"])
    grant = await settled_ledger(budgets, "capped", "PENGUIN")
    released = sum(q["status"]["spent"]["epsilon"] for q in succeeded)
    assert cap.spent.epsilon == pytest.approx(released) and cap.spent.epsilon <= cap.initial.epsilon
    assert grant.spent == cap.spent
    assert (cap.reservations, cap.charged, grant.reservations, grant.charged) == ({}, {}, {}, {})


async def test_deleting_an_experiment_deletes_its_caps_books_once_its_queries_are_gone(
    admin: KubeClient, namespace: str, system_namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("finished", "PENGUIN", epsilon=10, delta=0.005)
    await create(experiment("finished-study", budget={"epsilon": 1.0, "delta": 0.001}))
    await create(dpquery("finished-1", user="finished", experiment="finished-study"))
    [query] = await all_terminal(admin, namespace, 1, timeout=120)
    assert query["status"]["phase"] == "Succeeded"
    books = core_path("configmaps", system_namespace,
                      cap_name(CapKey(namespace, "finished-study", "finished", "PENGUIN")))
    assert L.from_data((await admin.get(books))["data"]).spent.epsilon == pytest.approx(0.1)
    await admin.delete(EXPERIMENT.api_path(namespace, "finished-study"))
    await wait_until_gone(admin, books)
