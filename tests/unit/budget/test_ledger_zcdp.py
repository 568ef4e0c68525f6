"""A grant accounted in zCDP: rho is reserved and charged, with the ledger's rules unchanged."""

from __future__ import annotations

import pytest

from dpkube.budget import ledger as L
from dpkube.budget.zcdp import epsilon_of, rho_of
from dpkube.models.cost import Cost

GAUSSIAN = Cost(0.1, 1e-5, rho=0.01)
"""A Gaussian release: its (epsilon, delta) as the library reports it, and its rho."""


def zcdp_grant(**data: str) -> L.Ledger:
    base = {"user": "alice", "dataset": "PENGUIN", "accounting": "zCDP", "initialDelta": "1e-5"}
    return L.from_data({**base, **({"initialRho": "0.05"} if "initialEpsilon" not in data else {}), **data})


def test_a_zcdp_grant_holds_the_rho_it_names() -> None:
    assert zcdp_grant().remaining.rho == 0.05


def test_an_epsilon_budget_is_converted_to_rho_at_the_grants_delta() -> None:
    assert zcdp_grant(initialEpsilon="1.0").initial_rho == rho_of(1.0, 1e-5)


def test_the_accounting_is_read_whatever_its_case() -> None:
    assert zcdp_grant(accounting="zcdp").zcdp


def test_reserving_holds_the_rho_out_of_what_remains() -> None:
    ledger = L.reserve(zcdp_grant(), "q1", GAUSSIAN)
    assert ledger.remaining.rho == pytest.approx(0.04)


def test_reserving_more_rho_than_remains_is_refused_naming_rho_and_its_epsilon() -> None:
    ledger = zcdp_grant(initialRho="0.015")
    ledger = L.reserve(ledger, "q1", GAUSSIAN)
    refusal = r"rho remaining 0\.00499+\d*, that is epsilon remaining 0\.37\d*, delta remaining 1e-05\.$"
    with pytest.raises(L.InsufficientBudget, match=refusal):
        L.reserve(ledger, "q2", GAUSSIAN)


def test_a_grant_fits_as_many_queries_as_its_rho_affords_whatever_their_epsilons_add_up_to() -> None:
    ledger = zcdp_grant()
    for i in range(5):
        ledger = L.charge(L.reserve(ledger, f"q{i}", GAUSSIAN), f"q{i}")
    assert ledger.spent_rho == pytest.approx(0.05)
    with pytest.raises(L.InsufficientBudget):
        L.reserve(ledger, "q5", GAUSSIAN)


def test_a_query_without_rho_is_refused_on_a_zcdp_grant() -> None:
    with pytest.raises(L.NotExpressibleInZCDP, match="accounted in zCDP") as refused:
        L.reserve(zcdp_grant(), "q1", Cost(0.1, 0.0))
    assert refused.value.reason == "NotExpressibleInZCDP"


def test_a_query_without_rho_is_refused_even_when_it_costs_nothing() -> None:
    with pytest.raises(L.NotExpressibleInZCDP):
        L.reserve(zcdp_grant(), "q1", Cost(0.0, 0.0))


def test_charging_moves_the_rho_to_spent_once() -> None:
    once = L.charge(L.reserve(zcdp_grant(), "q1", GAUSSIAN), "q1")
    assert (once.spent_rho, once.reservations) == (0.01, {})
    assert L.charge(once, "q1") == once


def test_reserving_the_same_uid_twice_reserves_once() -> None:
    once = L.reserve(zcdp_grant(), "q1", GAUSSIAN)
    assert L.reserve(once, "q1", GAUSSIAN) == once


def test_refunding_returns_the_rho() -> None:
    ledger = L.refund(L.reserve(zcdp_grant(), "q1", GAUSSIAN), "q1")
    assert ledger.remaining.rho == 0.05


def test_the_budget_is_reported_as_its_epsilon_at_the_grants_delta() -> None:
    ledger = L.charge(L.reserve(zcdp_grant(), "q1", GAUSSIAN), "q1")
    assert ledger.reported_initial == Cost(epsilon_of(0.05, 1e-5), 1e-5, rho=0.05)
    assert ledger.reported_spent == Cost(epsilon_of(0.01, 1e-5), 1e-5, rho=0.01)
    assert ledger.remaining_after_spent == Cost(epsilon_of(0.04, 1e-5), 1e-5, rho=0.04)


def test_an_epsilon_budget_is_reported_back_within_its_target() -> None:
    reported = zcdp_grant(initialEpsilon="1.0").reported_initial
    assert reported.epsilon == pytest.approx(1.0, rel=1e-6) and reported.epsilon <= 1.0


def test_a_zcdp_ledger_survives_a_round_trip_through_configmap_data() -> None:
    ledger = L.charge(L.reserve(zcdp_grant(), "q1", GAUSSIAN), "q1")
    ledger = L.reserve(ledger, "q2", Cost(0.2, 1e-6, rho=0.004))
    data = {"user": "alice", "dataset": "PENGUIN", "accounting": "zCDP", "initialDelta": "1e-5",
            "initialRho": "0.05", **L.to_data(ledger)}
    assert L.from_data(data) == ledger


def test_an_approximate_dp_grant_ignores_rho() -> None:
    ledger = L.from_data({"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "1", "initialDelta": "1e-4"})
    charged = L.charge(L.reserve(ledger, "q1", GAUSSIAN), "q1")
    assert charged.spent == Cost(0.1, 1e-5) and charged.spent_rho == 0.0
    assert set(L.to_data(charged)) == {"spentEpsilon", "spentDelta", "reservations", "charged"}
    assert L.to_data(charged)["charged"] == '{"q1":[0.1,1e-05]}'


@pytest.mark.parametrize("data, message", [
    ({"initialDelta": "0"}, "initialDelta must be in"),
    ({"initialEpsilon": "1", "initialRho": "0.1"}, "not both"),
    ({"initialRho": "-1"}, "non-negative"),
    ({"accounting": "renyi"}, "accounting must be one of"),
    ({"spentEpsilon": "0.5"}, "cannot be switched to zCDP"),
    ({"reservations": '{"q1":[0.1,0.0]}'}, "without a rho cost"),
])
def test_a_broken_zcdp_grant_is_refused_with_what_is_wrong(data: dict, message: str) -> None:
    base = {"user": "alice", "dataset": "PENGUIN", "accounting": "zCDP", "initialDelta": "1e-5"}
    if "initialEpsilon" not in data:
        base["initialRho"] = "0.05"
    with pytest.raises(L.InvalidGrant, match=message):
        L.from_data({**base, **data})


def test_a_grant_that_spent_rho_cannot_be_switched_back_to_approximate_dp() -> None:
    with pytest.raises(L.InvalidGrant, match="cannot be switched from zCDP"):
        L.from_data({"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "1", "spentRho": "0.01"})
