"""A zCDP grant on the Lomas routes: its budget reads as (epsilon, delta) at its delta, and a query without a
rho cost is refused with 400 before anything is reserved."""

from __future__ import annotations

import pytest

from dpkube.budget import ledger as L
from dpkube.budget.zcdp import epsilon_of, rho_of
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY

from .conftest import Caller

DELTA = 1e-5
LAPLACE_SQL = {**examples.SMARTNOISE_SQL_QUERY, "mechanisms": {}}


@pytest.fixture
def operator(operator_process) -> None:
    """The operator admits and rejects; no query pod runs without the node agent."""


@pytest.fixture
def platform(operator_process, node_agent) -> None:
    """The operator and the node agent: query pods run."""


@pytest.fixture
async def zcdp_caller(new_caller, budgets: Budgets) -> Caller:
    """A user whose PENGUIN budget is (1, 1e-5) accounted in zCDP."""
    caller = await new_caller({})
    await budgets.grant(caller.name, "PENGUIN", 1.0, DELTA, accounting=L.Accounting.ZCDP)
    return caller


async def budget(http, caller: Caller, route: str) -> dict:
    response = await http.post(route, json=examples.GET_DB_DATA, headers=caller.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_zcdp_grant_reports_its_initial_budget_as_epsilon_at_its_delta(http, zcdp_caller) -> None:
    epsilon = epsilon_of(rho_of(1.0, DELTA), DELTA)
    assert await budget(http, zcdp_caller, "/get_initial_budget") == {"initial_epsilon": epsilon,
                                                                        "initial_delta": DELTA}
    assert epsilon == pytest.approx(1.0, rel=1e-6) and epsilon <= 1.0


async def test_a_fresh_zcdp_grant_reports_nothing_spent_and_everything_remaining(http, zcdp_caller) -> None:
    assert await budget(http, zcdp_caller, "/get_total_spent_budget") == {"total_spent_epsilon": 0.0,
                                                                            "total_spent_delta": DELTA}
    remaining = await budget(http, zcdp_caller, "/get_remaining_budget")
    assert remaining == {"remaining_epsilon": epsilon_of(rho_of(1.0, DELTA), DELTA), "remaining_delta": DELTA}


async def test_a_laplace_query_on_a_zcdp_grant_is_400_and_moves_nothing(operator, http, zcdp_caller,
                                                                        budgets: Budgets) -> None:
    response = await http.post("/smartnoise_sql_query", json=LAPLACE_SQL, headers=zcdp_caller.headers)
    assert response.status_code == 400
    assert "accounted in zCDP (rho) and this query has no zCDP cost" in response.json()["InvalidQueryException"]
    ledger = (await budgets.find(zcdp_caller.name, "PENGUIN")).ledger
    assert (ledger.spent_rho, ledger.reservations, ledger.charged) == (0.0, {}, {})


async def test_a_laplace_query_on_a_zcdp_grant_is_rejected_with_a_typed_reason(operator, http, zcdp_caller,
                                                                               admin: KubeClient,
                                                                               namespace: str) -> None:
    await http.post("/smartnoise_sql_query", json=LAPLACE_SQL, headers=zcdp_caller.headers)
    [query] = (await admin.list(DPQUERY.api_path(namespace)))["items"]
    complete = next(c for c in query["status"]["conditions"] if c["type"] == "Complete")
    assert (query["status"]["phase"], complete["reason"]) == ("Rejected", "NotExpressibleInZCDP")


@pytest.mark.slow
async def test_a_gaussian_query_on_a_zcdp_grant_is_charged_its_rho(platform, http, zcdp_caller,
                                                                   budgets: Budgets) -> None:
    response = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                               headers=zcdp_caller.headers)
    assert response.status_code == 200, response.text
    ledger = (await budgets.find(zcdp_caller.name, "PENGUIN")).ledger
    assert ledger.spent_rho > 0 and ledger.spent.epsilon == 0.0
    spent = await budget(http, zcdp_caller, "/get_total_spent_budget")
    assert spent == {"total_spent_epsilon": epsilon_of(ledger.spent_rho, DELTA), "total_spent_delta": DELTA}
