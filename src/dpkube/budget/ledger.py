"""The privacy-budget ledger of one (user, dataset) grant, as pure functions over its state.

Invariants kept here (the Kubernetes side only adds compare-and-swap):
- remaining = initial - spent - reserved never goes below zero, for epsilon and delta both;
- every movement is keyed by the query's uid and idempotent: reserving twice reserves once, charging
  twice charges once, refunding what was charged or never reserved does nothing;
- a charge moves the query's own reservation to spent; nothing is charged that was not reserved.

A grant is a ConfigMap: the admin writes `user`, `dataset`, `initialEpsilon`, `initialDelta` and
`mayQuery`; the operator keeps `spentEpsilon`, `spentDelta`, `reservations` and `charged` (the uids
charged whose query has not yet recorded it, so a crash between the two never charges twice).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dpkube.models.dpquery import Cost

# Float sums drift in the last bits; a query that fits the budget "exactly" must still fit.
TOLERANCE = 1e-12


class BudgetError(Exception):
    """Why a movement was refused; `reason` is one of the CamelCase condition reasons."""

    reason = "BudgetError"


class InsufficientBudget(BudgetError):
    reason = "InsufficientBudget"

    def __init__(self, remaining: Cost):
        self.remaining = remaining
        super().__init__(
            f"Not enough budget for this query epsilon remaining {remaining.epsilon}, "
            f"delta remaining {remaining.delta}."
        )


class UserNotAllowed(BudgetError):
    reason = "UserNotAllowed"


class InvalidGrant(BudgetError):
    """The grant ConfigMap cannot be read as a ledger (an admin's typo); nothing is moved."""

    reason = "InvalidGrant"


@dataclass(frozen=True)
class Ledger:
    """The state of one grant."""

    user: str
    dataset: str
    initial: Cost
    may_query: bool = True
    spent_epsilon: float = 0.0
    spent_delta: float = 0.0
    reservations: Mapping[str, Cost] = field(default_factory=dict)
    charged: Mapping[str, Cost] = field(default_factory=dict)

    @property
    def spent(self) -> Cost:
        return Cost(epsilon=self.spent_epsilon, delta=self.spent_delta)

    @property
    def reserved(self) -> Cost:
        return Cost(
            epsilon=sum(c.epsilon for c in self.reservations.values()),
            delta=min(1.0, sum(c.delta for c in self.reservations.values())),
        )

    @property
    def remaining(self) -> Cost:
        """What a new query may still reserve."""
        reserved = self.reserved
        return Cost(
            epsilon=max(0.0, self.initial.epsilon - self.spent_epsilon - reserved.epsilon),
            delta=min(1.0, max(0.0, self.initial.delta - self.spent_delta - reserved.delta)),
        )

    @property
    def remaining_after_spent(self) -> Cost:
        """initial - spent, as Lomas reports `remaining` (reservations in flight not subtracted)."""
        return Cost(
            epsilon=max(0.0, self.initial.epsilon - self.spent_epsilon),
            delta=min(1.0, max(0.0, self.initial.delta - self.spent_delta)),
        )


def reserve(ledger: Ledger, uid: str, cost: Cost) -> Ledger:
    """Hold `cost` for query `uid`; refused when it does not fit what remains."""
    if uid in ledger.reservations or uid in ledger.charged:
        return ledger
    if not ledger.may_query:
        raise UserNotAllowed(f"{ledger.user} is not allowed to query {ledger.dataset}.")
    remaining = ledger.remaining
    if cost.epsilon > remaining.epsilon + TOLERANCE or cost.delta > remaining.delta + TOLERANCE:
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
        spent_epsilon=ledger.spent_epsilon + cost.epsilon,
        spent_delta=ledger.spent_delta + cost.delta,
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
        spent_epsilon=_float(data, "spentEpsilon", 0.0),
        spent_delta=_float(data, "spentDelta", 0.0),
        reservations=_costs(data, "reservations"),
        charged=_costs(data, "charged"),
    )


def to_data(ledger: Ledger) -> dict[str, str]:
    """The operator-kept keys of a grant ConfigMap (the admin's keys are left as they are)."""

    def dump(costs: Mapping[str, Cost]) -> str:
        return json.dumps({uid: [c.epsilon, c.delta] for uid, c in sorted(costs.items())}, separators=(",", ":"))

    return {
        "spentEpsilon": repr(ledger.spent_epsilon),
        "spentDelta": repr(ledger.spent_delta),
        "reservations": dump(ledger.reservations),
        "charged": dump(ledger.charged),
    }
