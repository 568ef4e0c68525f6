"""The privacy-budget ledger of one (user, dataset) grant, as pure functions over its state.

Invariants kept here (the Kubernetes side only adds compare-and-swap):
- remaining = initial - spent - reserved never goes below zero, for epsilon and delta both;
- every movement is keyed by the query's uid and idempotent: reserving twice reserves once, charging
  twice charges once, refunding what was charged or never reserved does nothing;
- a charge moves the query's own reservation to spent; nothing is charged that was not reserved.

When a query is charged: when its result is released, and also whenever its runner was allowed to read
the private data and the query then ends any other way (a library error, an empty or NaN result, a
timeout, a lost pod, a deletion while running), because such an outcome depends on the data. A refund
happens only when nothing was read: a refusal at admission, or a pod that never got to the data.

A grant is a ConfigMap: the admin writes `user`, `dataset`, `initialEpsilon`, `initialDelta` and
`mayQuery`; the operator keeps `spentEpsilon`, `spentDelta`, `reservations` and `charged` (the uids
charged whose query has not yet recorded it, so a crash between the two never charges twice).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dpkube.models.conditions import Reason
from dpkube.models.cost import ZERO, Cost


class BudgetError(Exception):
    """Why a movement was refused; `reason` is one of the CamelCase condition reasons."""

    reason: str = Reason.BUDGET_ERROR


class InsufficientBudget(BudgetError):
    reason = Reason.INSUFFICIENT_BUDGET

    def __init__(self, remaining: Cost):
        self.remaining = remaining
        super().__init__(
            f"Not enough budget for this query epsilon remaining {remaining.epsilon}, "
            f"delta remaining {remaining.delta}."
        )


class UserNotAllowed(BudgetError):
    reason = Reason.USER_NOT_ALLOWED


class InvalidGrant(BudgetError):
    """The grant ConfigMap cannot be read as a ledger (an admin's typo); nothing is moved."""

    reason = Reason.INVALID_GRANT


@dataclass(frozen=True)
class Ledger:
    """The state of one grant."""

    user: str
    dataset: str
    initial: Cost
    may_query: bool = True
    spent: Cost = ZERO
    reservations: Mapping[str, Cost] = field(default_factory=dict)
    charged: Mapping[str, Cost] = field(default_factory=dict)

    @property
    def reserved(self) -> Cost:
        return Cost.total(self.reservations.values())

    @property
    def remaining(self) -> Cost:
        """What a new query may still reserve."""
        return self.initial - self.spent - self.reserved

    @property
    def remaining_after_spent(self) -> Cost:
        """initial - spent, as Lomas reports `remaining` (reservations in flight not subtracted)."""
        return self.initial - self.spent


def reserve(ledger: Ledger, uid: str, cost: Cost) -> Ledger:
    """Hold `cost` for query `uid`; refused when it does not fit what remains."""
    if uid in ledger.reservations or uid in ledger.charged:
        return ledger
    if not ledger.may_query:
        raise UserNotAllowed(f"{ledger.user} is not allowed to query {ledger.dataset}.")
    remaining = ledger.remaining
    if not cost.fits_in(remaining):
        raise InsufficientBudget(remaining)
    return replace(ledger, reservations={**ledger.reservations, uid: cost})


def charge(ledger: Ledger, uid: str) -> Ledger:
    """Move the reservation of `uid` to spent; charging again is a no-op."""
    if uid in ledger.charged:
        return ledger
    cost = ledger.reservations.get(uid)
    if cost is None:
        raise BudgetError(f"query {uid} has no reservation to charge")
    reservations = {k: v for k, v in ledger.reservations.items() if k != uid}
    return replace(
        ledger,
        spent=ledger.spent + cost,
        reservations=reservations,
        charged={**ledger.charged, uid: cost},
    )


def refund(ledger: Ledger, uid: str) -> Ledger:
    """Return the reservation of `uid` (nothing was released); a no-op once charged or never reserved."""
    if uid not in ledger.reservations:
        return ledger
    return replace(ledger, reservations={k: v for k, v in ledger.reservations.items() if k != uid})


def forget(ledger: Ledger, uid: str) -> Ledger:
    """Drop the idempotency record of a charge once the query itself records it."""
    if uid not in ledger.charged:
        return ledger
    return replace(ledger, charged={k: v for k, v in ledger.charged.items() if k != uid})


def _float(data: Mapping[str, str], key: str, default: float | None = None) -> float:
    raw = data.get(key)
    if raw is None or raw == "":
        if default is None:
            raise InvalidGrant(f"grant has no {key}")
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidGrant(f"grant {key} is not a number: {raw!r}") from exc
    if value < 0 or value != value:
        raise InvalidGrant(f"grant {key} must be a non-negative number: {raw!r}")
    return value


def _costs(data: Mapping[str, str], key: str) -> dict[str, Cost]:
    try:
        raw = json.loads(data.get(key) or "{}")
        return {uid: Cost(epsilon=v[0], delta=v[1]) for uid, v in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidGrant(f"grant {key} is not readable") from exc


def from_data(data: Mapping[str, str]) -> Ledger:
    """Read a ledger from a grant ConfigMap's data."""
    if not data.get("user") or not data.get("dataset"):
        raise InvalidGrant("grant must name a user and a dataset")
    initial_delta = _float(data, "initialDelta", 0.0)
    if initial_delta > 1:
        raise InvalidGrant("grant initialDelta must be at most 1")
    return Ledger(
        user=data["user"],
        dataset=data["dataset"],
        initial=Cost(epsilon=_float(data, "initialEpsilon"), delta=initial_delta),
        may_query=data.get("mayQuery", "true").strip().lower() not in ("false", "0", "no"),
        spent=Cost(_float(data, "spentEpsilon", 0.0), min(1.0, _float(data, "spentDelta", 0.0))),
        reservations=_costs(data, "reservations"),
        charged=_costs(data, "charged"),
    )


def to_data(ledger: Ledger) -> dict[str, str]:
    """The operator-kept keys of a grant ConfigMap (the admin's keys are left as they are)."""

    def dump(costs: Mapping[str, Cost]) -> str:
        return json.dumps({uid: [c.epsilon, c.delta] for uid, c in sorted(costs.items())}, separators=(",", ":"))

    return {
        "spentEpsilon": repr(ledger.spent.epsilon),
        "spentDelta": repr(ledger.spent.delta),
        "reservations": dump(ledger.reservations),
        "charged": dump(ledger.charged),
    }
