"""An experiment's budget rows as Dioptra callers see them: their own, or every row for an admin."""

from __future__ import annotations

from dpkube.api.auth import Identity
from dpkube.api.services.dioptra.budgets import row_wire, visible
from dpkube.budget import ledger as L
from dpkube.k8s.caps import CapRow
from dpkube.models.cost import Cost


def row(user: str, spent: float = 0.0, reserved: float = 0.0) -> CapRow:
    ledger = L.Ledger(user=user, dataset="PENGUIN", initial=Cost(1.0, 1e-3), spent=Cost(spent),
                      reservations=L.Holds({"q": Cost(reserved)} if reserved else {}))
    return CapRow(user, "PENGUIN", ledger)


def test_a_user_sees_only_their_own_rows() -> None:
    rows = [row("alice"), row("bob")]
    assert [r.user for r in visible(rows, Identity("alice"))] == ["alice"]


def test_an_admin_sees_every_row() -> None:
    rows = [row("alice"), row("bob")]
    assert [r.user for r in visible(rows, Identity("root", admin=True))] == ["alice", "bob"]


def test_a_row_shows_the_cap_spent_reserved_and_what_remains() -> None:
    assert row_wire(row("alice", spent=0.25, reserved=0.5)) == {
        "user": "alice", "dataset": "PENGUIN", "cap": {"epsilon": 1.0, "delta": 1e-3},
        "spent": {"epsilon": 0.25, "delta": 0.0}, "reserved": {"epsilon": 0.5, "delta": 0.0},
        "remaining": {"epsilon": 0.25, "delta": 1e-3}}
