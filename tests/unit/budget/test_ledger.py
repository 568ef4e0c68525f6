"""The ledger's rules, as a specification: never overspent, every movement idempotent by uid."""

from __future__ import annotations

import pytest

from dpkube.budget import ledger as L
from dpkube.models.cost import Cost


def grant(epsilon: float = 10.0, delta: float = 0.005, **data: str) -> L.Ledger:
    return L.from_data({"user": "alice", "dataset": "PENGUIN", "initialEpsilon": str(epsilon),
                        "initialDelta": str(delta), **data})


def test_reserving_holds_the_cost_out_of_what_remains() -> None:
    ledger = L.reserve(grant(), "q1", Cost(epsilon=4, delta=1e-5))
    assert ledger.remaining == Cost(epsilon=6, delta=0.005 - 1e-5)
    assert ledger.spent == Cost(epsilon=0, delta=0)


def test_reserving_more_than_remains_is_refused_with_lomas_message() -> None:
    ledger = L.reserve(grant(epsilon=5), "q1", Cost(epsilon=4, delta=0))
    with pytest.raises(L.InsufficientBudget, match=r"epsilon remaining 1.0, delta remaining 0.005\.$"):
        L.reserve(ledger, "q2", Cost(epsilon=2, delta=0))


def test_a_cost_equal_to_what_remains_fits() -> None:
    ledger = L.reserve(grant(epsilon=0.3), "q1", Cost(epsilon=0.1, delta=0))
    ledger = L.reserve(ledger, "q2", Cost(epsilon=0.2, delta=0))
    assert ledger.remaining.epsilon == 0


def test_delta_is_checked_as_strictly_as_epsilon() -> None:
    with pytest.raises(L.InsufficientBudget):
        L.reserve(grant(delta=1e-5), "q1", Cost(epsilon=0.1, delta=2e-5))


def test_reserving_the_same_uid_twice_reserves_once() -> None:
    once = L.reserve(grant(), "q1", Cost(epsilon=4, delta=0))
    assert L.reserve(once, "q1", Cost(epsilon=4, delta=0)) == once


def test_charging_moves_the_reservation_to_spent() -> None:
    ledger = L.charge(L.reserve(grant(), "q1", Cost(epsilon=4, delta=1e-5)), "q1")
    assert ledger.spent == Cost(epsilon=4, delta=1e-5)
    assert ledger.reservations == {}
    assert ledger.remaining == Cost(epsilon=6, delta=0.005 - 1e-5)


def test_charging_twice_charges_once() -> None:
    once = L.charge(L.reserve(grant(), "q1", Cost(epsilon=4, delta=0)), "q1")
    assert L.charge(once, "q1") == once


def test_nothing_is_charged_that_was_not_reserved() -> None:
    with pytest.raises(L.BudgetError):
        L.charge(grant(), "q1")


def test_a_charged_query_cannot_be_reserved_again() -> None:
    charged = L.charge(L.reserve(grant(), "q1", Cost(epsilon=4, delta=0)), "q1")
    assert L.reserve(charged, "q1", Cost(epsilon=4, delta=0)) == charged


def test_refunding_returns_the_reservation() -> None:
    ledger = L.refund(L.reserve(grant(), "q1", Cost(epsilon=4, delta=0)), "q1")
    assert ledger.remaining == Cost(epsilon=10, delta=0.005)


def test_refunding_after_a_charge_changes_nothing() -> None:
    charged = L.charge(L.reserve(grant(), "q1", Cost(epsilon=4, delta=0)), "q1")
    assert L.refund(charged, "q1") == charged


def test_forgetting_a_charge_keeps_the_spend() -> None:
    ledger = L.forget(L.charge(L.reserve(grant(), "q1", Cost(epsilon=4, delta=0)), "q1"), "q1")
    assert ledger.spent.epsilon == 4 and ledger.charged == {}


def test_a_user_not_allowed_cannot_reserve() -> None:
    with pytest.raises(L.UserNotAllowed):
        L.reserve(grant(mayQuery="false"), "q1", Cost(epsilon=0.1, delta=0))


def test_remaining_is_reported_as_lomas_computes_it() -> None:
    cost = Cost(epsilon=4.0, delta=1.499995e-05)
    ledger = grant(delta=0.005)
    for uid in ("q1", "q2"):
        ledger = L.charge(L.reserve(ledger, uid, cost), uid)
    expected_delta = 0.005 - (0.0 + cost.delta + cost.delta)
    with pytest.raises(L.InsufficientBudget, match=rf"epsilon remaining 2.0, delta remaining {expected_delta!r}\.$"):
        L.reserve(ledger, "q3", cost)


def test_ledger_survives_a_round_trip_through_configmap_data() -> None:
    ledger = L.charge(L.reserve(grant(), "q1", Cost(epsilon=0.1, delta=1e-5)), "q1")
    ledger = L.reserve(ledger, "q2", Cost(epsilon=0.3, delta=0))
    data = {"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "10.0", "initialDelta": "0.005",
            **L.to_data(ledger)}
    assert L.from_data(data) == ledger


@pytest.mark.parametrize("data, message", [
    ({"dataset": "PENGUIN", "initialEpsilon": "1"}, "name a user"),
    ({"user": "a", "dataset": "D", "initialEpsilon": "ten"}, "initialEpsilon is not a number"),
    ({"user": "a", "dataset": "D", "initialEpsilon": "-1"}, "non-negative"),
    ({"user": "a", "dataset": "D", "initialEpsilon": "1", "initialDelta": "2"}, "at most 1"),
    ({"user": "a", "dataset": "D"}, "no initialEpsilon"),
])
def test_a_broken_grant_is_refused_with_what_is_wrong(data: dict, message: str) -> None:
    with pytest.raises(L.InvalidGrant, match=message):
        L.from_data(data)


@pytest.mark.parametrize("stored", [
    '{"q": [0.1]}', '{"q": [-0.1, 0]}', '{"q": [0.1, 1.5]}', '{"q": ["0.1", 0]}', '{"q": [true, 0]}',
    '{"q": [NaN, 0]}', '{"q": 0.1}', '["q"]', "not json",
])
def test_a_reservation_that_is_not_a_cost_makes_the_grant_unreadable(stored: str) -> None:
    data = {"user": "a", "dataset": "D", "initialEpsilon": "1", "reservations": stored}
    with pytest.raises(L.InvalidGrant, match="reservations is not readable"):
        L.from_data(data)


def test_a_grant_with_thousands_of_reservations_sums_them_as_costs_do() -> None:
    costs = [Cost(0.001 * (i % 7), 1e-9 * (i % 3)) for i in range(3000)]
    ledger = grant()
    for i, cost in enumerate(costs):
        ledger = L.reserve(ledger, f"q{i}", cost)
    assert ledger.reserved == Cost.total(costs)
    assert L.from_data({"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "10.0", "initialDelta": "0.005",
                        **L.to_data(ledger)}) == ledger


def test_a_grant_too_full_to_record_one_more_query_makes_it_wait() -> None:
    ledger = grant(epsilon=1e6, delta=1.0)
    uid = 0
    with pytest.raises(L.GrantFull) as full:
        while True:
            ledger = L.reserve(ledger, f"00000000-0000-0000-0000-{uid:012d}", Cost(0.1, 1e-5))
            uid += 1
    stored = L.to_data(ledger)
    assert full.value.reason == "GrantFull" and str(uid) in str(full.value)
    assert len(stored["reservations"]) + len(stored["charged"]) <= L.HELD_BYTES_LIMIT < 1024**2
    assert len(stored["reservations"]) > 0.99 * L.HELD_BYTES_LIMIT


def test_a_charge_or_a_refund_is_never_refused_for_room() -> None:
    ledger = grant(epsilon=1e6, delta=1.0)
    for uid in range(20_000):
        try:
            ledger = L.reserve(ledger, f"00000000-0000-0000-0000-{uid:012d}", Cost(0.1, 1e-5))
        except L.GrantFull:
            break
    first, second = list(ledger.reservations)[:2]
    ledger = L.refund(L.charge(ledger, first), second)
    assert first in ledger.charged and second not in ledger.reservations


def test_the_room_a_grant_counts_is_what_its_stored_rows_take() -> None:
    ledger = grant(epsilon=100)
    for i in range(50):
        ledger = L.reserve(ledger, f"q{i}", Cost(0.01 * i, 1e-7))
    ledger = L.refund(L.charge(L.charge(ledger, "q3"), "q4"), "q5")
    stored = L.to_data(ledger)
    assert 0 <= ledger.reservations.size - len(stored["reservations"]) <= 1  # a comma counted per row
    assert 0 <= ledger.charged.size - len(stored["charged"]) <= 1


def test_settling_ended_queries_returns_their_reservations_and_forgets_their_charges() -> None:
    cost = Cost(epsilon=1.0, delta=1e-5)
    ledger = L.charge(L.reserve(L.reserve(grant(), "released", cost), "abandoned", cost), "released")
    settled = L.settle(ledger, ["released", "abandoned", "unknown"])
    assert (settled.reservations, settled.charged) == ({}, {})
    assert settled.spent == cost and settled.remaining == grant().initial - cost


@pytest.mark.parametrize("zcdp", [False, True])
@pytest.mark.parametrize("stored_every", [1, 40, 1000])
def test_a_grant_moved_many_times_stores_and_totals_what_its_rows_would_from_scratch(zcdp: bool,
                                                                                    stored_every: int) -> None:
    ledger = grant(epsilon=1e4, delta=0.5, **({"accounting": "zCDP"} if zcdp else {}))
    for i in range(400):
        ledger = L.reserve(ledger, f"q{i}", Cost(0.01 * (i % 13), 1e-7 * (i % 5), rho=0.001 * (i % 11)))
        if i % 3 == 0:
            ledger = L.charge(ledger, f"q{i // 2}")
        if i % 7 == 0:
            ledger = L.settle(ledger, [f"q{i // 3}", f"q{i // 5}"])
        if i % stored_every and i != 399:
            continue
        stored = L.to_data(ledger)
        again = L.Ledger(ledger.user, ledger.dataset, ledger.initial, reservations=L.Holds(ledger.reservations),
                         charged=L.Holds(ledger.charged), accounting=ledger.accounting)
        assert L.to_data(again)["reservations"] == stored["reservations"]
        assert L.to_data(again)["charged"] == stored["charged"]
        assert (ledger.reserved, ledger.reserved_rho) == (again.reserved, again.reserved_rho)
