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

A grant with `accounting: zCDP` holds a rho budget instead (`initialRho`, or `initialEpsilon` converted
to rho at `initialDelta`) and composes its queries by adding their rhos, which fits many more Gaussian
releases than adding their (epsilon, delta). The operator keeps `spentRho`; a query without a rho cost
is refused on such a grant. Its budget is reported as the (epsilon, delta) equivalent at `initialDelta`.
"""

from __future__ import annotations

import collections
import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from dpkube.budget.zcdp import ConversionError, epsilon_of, rho_of
from dpkube.models.conditions import Reason
from dpkube.models.cost import TOLERANCE, ZERO, Cost


class Accounting(StrEnum):
    """How a grant composes the costs of its queries."""

    APPROX_DP = "approxDP"
    """(epsilon, delta) added up: basic composition (the default)."""
    ZCDP = "zCDP"
    """rho added up: zero-concentrated DP composition, for Gaussian releases."""


class BudgetError(Exception):
    """Why a movement was refused; `reason` is one of the CamelCase condition reasons."""

    reason: str = Reason.BUDGET_ERROR


class InsufficientBudget(BudgetError):
    reason = Reason.INSUFFICIENT_BUDGET

    def __init__(self, remaining: Cost):
        self.remaining = remaining
        rho = "" if remaining.rho is None else f"rho remaining {remaining.rho}, that is "
        super().__init__(
            f"Not enough budget for this query {rho}epsilon remaining {remaining.epsilon}, "
            f"delta remaining {remaining.delta}."
        )


class NotExpressibleInZCDP(BudgetError):
    """A query with no rho cost, on a grant accounted in zCDP."""

    reason = Reason.NOT_EXPRESSIBLE_IN_ZCDP

    def __init__(self) -> None:
        super().__init__(
            "This budget is accounted in zCDP (rho) and this query has no zCDP cost: use the gaussian "
            "mechanism in smartnoise-sql (without GROUP BY thresholding), or an OpenDP measurement whose output "
            "measure is zero-concentrated divergence (make_pureDP_to_zCDP converts a pure-DP one)."
        )


class GrantFull(BudgetError):
    """The grant has no room for one more query in flight: not a refusal, the query waits until some end."""

    reason = Reason.GRANT_FULL

    def __init__(self, held: int):
        super().__init__(f"{held} queries hold this budget at once, as many as its grant can record; "
                         "this one waits until some of them end.")


class UserNotAllowed(BudgetError):
    reason = Reason.USER_NOT_ALLOWED


class InvalidGrant(BudgetError):
    """The grant ConfigMap cannot be read as a ledger (an admin's typo); nothing is moved."""

    reason = Reason.INVALID_GRANT


Row = tuple[float, float, float | None]
"""A cost as a grant stores it: epsilon, delta and (zCDP) rho."""
MAX_MOVES_REPLAYED = 256
"""Most movements a Holds' text is replayed over (a longer chain is dumped afresh instead)."""
HELD_BYTES_LIMIT = 900_000
"""Most bytes a grant's rows of queries in flight (reservations, and charges not yet recorded) may take: a
ConfigMap holds at most 1 MiB, and a grant the API server refuses to store would stop every movement on it."""


def _row_bytes(uid: str, row: Row) -> int:
    """What one row adds to its stored JSON, with its comma (with rho when it has one: at least what `stored`
    writes)."""
    return len(_fragment(uid, row, with_rho=row[2] is not None)) + 1


class Holds(Mapping[str, Cost]):
    """Costs by query uid, kept as rows. A grant with thousands of queries in flight is read, moved and
    rewritten on every admission, so only the costs asked for become `Cost` objects, and a movement carries
    the size and totals along, and its stored text is its parent's with one row appended or cut, made when
    asked for, instead of recounting and dumping every row."""

    __slots__ = ("_depth", "_rows", "_since", "_size", "_sums", "_texts")

    def __init__(self, costs: Mapping[str, Cost] | None = None) -> None:
        self._rows: dict[str, Row] = ({} if costs is None else dict(costs._rows) if isinstance(costs, Holds)
                                      else {uid: (c.epsilon, c.delta, c.rho) for uid, c in costs.items()})
        self._size: int | None = None
        self._sums: tuple[float, float, float] | None = None
        """epsilon, delta and rho added up in row order (so the same floats a fresh sum gives)."""
        self._texts: dict[bool, str] = {}
        """The stored JSON, without and with rho, once made."""
        self._since: tuple[Holds, str, Row, bool] | None = None
        """The Holds this one was moved from, and the row it added (True) or took away: its text is made from
        that one's. Dropped once this one's text is made, so no chain of versions outlives a write."""
        self._depth = 0

    @classmethod
    def _of_rows(cls, rows: dict[str, Row], size: int | None = None, sums: tuple[float, float, float] | None = None,
                 since: tuple[Holds, str, Row, bool] | None = None) -> Holds:
        holds = cls()
        holds._rows, holds._size, holds._sums = rows, size, sums
        if since is not None:
            parent = since[0]
            depth = 1 if parent._texts else parent._depth + 1
            if depth <= MAX_MOVES_REPLAYED and (parent._texts or parent._since is not None):
                holds._since, holds._depth = since, depth
        return holds

    @property
    def size(self) -> int:
        """Bytes of these rows as stored, or one more: counted once, then carried along by each movement."""
        if self._size is None:
            self._size = 2 + sum(_row_bytes(uid, row) for uid, row in self._rows.items())
        return self._size

    def __getitem__(self, uid: str) -> Cost:
        epsilon, delta, rho = self._rows[uid]
        return Cost(epsilon, delta, rho=rho)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, uid: object) -> bool:
        return uid in self._rows

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._rows == Holds(other)._rows
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Holds({self._rows!r})"

    def with_cost(self, uid: str, cost: Cost) -> Holds:
        row = (cost.epsilon, cost.delta, cost.rho)
        old = self._rows.get(uid)
        size = None if self._size is None else \
            self._size + _row_bytes(uid, row) - (0 if old is None else _row_bytes(uid, old))
        if old is not None:  # a changed row keeps its place: the text and the sums are made again when asked
            return Holds._of_rows({**self._rows, uid: row}, size)
        sums = None if self._sums is None else \
            (self._sums[0] + row[0], self._sums[1] + row[1], self._sums[2] + (row[2] or 0.0))
        return Holds._of_rows({**self._rows, uid: row}, size, sums, (self, uid, row, True))

    def without(self, uid: str) -> Holds:
        old = self._rows.get(uid)
        if old is None:
            return self
        rows = dict(self._rows)
        del rows[uid]
        size = None if self._size is None else self._size - _row_bytes(uid, old)
        return Holds._of_rows(rows, size, None, (self, uid, old, False))

    def _totals(self) -> tuple[float, float, float]:
        if self._sums is None:
            rows = self._rows.values()
            self._sums = (sum(row[0] for row in rows), sum(row[1] for row in rows), sum(row[2] or 0.0 for row in rows))
        return self._sums

    def total(self) -> Cost:
        """The basic composition of every cost: the same sum as `Cost.total`, without a Cost per row."""
        epsilon, delta, _ = self._totals()
        return Cost(epsilon, min(1.0, delta))

    def total_rho(self) -> float:
        return self._totals()[2]

    def stored(self, *, with_rho: bool) -> str:
        """The grant's JSON of these costs, by uid in the order they came; read back, it parses to these Holds
        at no cost."""
        text = self._texts.get(with_rho)
        if text is None:
            text = self._replayed(with_rho)
            if text is None:
                text = json.dumps({uid: _listed(row, with_rho) for uid, row in self._rows.items()},
                                  separators=(",", ":"))
            self._texts[with_rho] = text
        self._since, self._depth = None, 0
        _remember(text, with_rho, self)
        return text

    def _replayed(self, with_rho: bool) -> str | None:
        """The text of the nearest version this one was moved from whose text is known, with the rows added
        since appended and those taken away cut; None when there is none, or a row is not found."""
        moves = []
        holds = self
        while (text := holds._texts.get(with_rho)) is None:
            if holds._since is None:
                return None
            parent, uid, row, added = holds._since
            moves.append((uid, row, added, bool(parent._rows)))
            holds = parent
        for uid, row, added, had_rows in reversed(moves):
            fragment = _fragment(uid, row, with_rho)
            if added:
                text = f"{text[:-1]}{',' if had_rows else ''}{fragment}}}"
            elif (text := _cut(text, fragment)) is None:
                return None
        return text


def _listed(row: Row, with_rho: bool) -> list[float | None]:
    """A row's value as stored: [epsilon, delta], and rho on a zCDP grant."""
    return [row[0], row[1], row[2]] if with_rho else [row[0], row[1]]


def _fragment(uid: str, row: Row, with_rho: bool) -> str:
    """One row as `Holds.stored` writes it: `"uid":[epsilon,delta(,rho)]`."""
    return json.dumps({uid: _listed(row, with_rho)}, separators=(",", ":"))[1:-1]


def _cut(text: str, fragment: str) -> str | None:
    """`text` without the row `fragment` and its comma; None when it is not found as a whole row."""
    at = text.find(fragment)
    end = at + len(fragment)
    if at < 1 or text[at - 1] not in "{," or text[end] not in ",}":
        return None
    if text[end] == ",":
        return text[:at] + text[end + 1:]
    return text[:at - 1 if text[at - 1] == "," else at] + text[end:]


PARSED_KEPT = 16
"""How many stored texts of holds are kept parsed: the operator reads back what it just wrote, grant after grant."""
_parsed: collections.OrderedDict[tuple[str, bool], Holds] = collections.OrderedDict()
_parsed_lock = threading.Lock()
"""The facade reads grants from worker threads too."""


def _remember(text: str, zcdp: bool, holds: Holds) -> None:
    with _parsed_lock:
        _parsed[(text, zcdp)] = holds
        _parsed.move_to_end((text, zcdp))
        while len(_parsed) > PARSED_KEPT:
            _parsed.popitem(last=False)


def _recalled(text: str, zcdp: bool) -> Holds | None:
    with _parsed_lock:
        return _parsed.get((text, zcdp))


@dataclass(frozen=True)
class Ledger:
    """The state of one grant. Under zCDP, `initial_rho` and `spent_rho` are the books, `initial.delta` is the
    delta the budget is reported at, and `spent` stays zero."""

    user: str
    dataset: str
    initial: Cost
    may_query: bool = True
    spent: Cost = ZERO
    reservations: Holds = field(default_factory=Holds)
    charged: Holds = field(default_factory=Holds)
    accounting: Accounting = Accounting.APPROX_DP
    initial_rho: float = 0.0
    spent_rho: float = 0.0

    @property
    def zcdp(self) -> bool:
        return self.accounting is Accounting.ZCDP

    @property
    def reserved(self) -> Cost:
        return self.reservations.total()

    @property
    def reserved_rho(self) -> float:
        return self.reservations.total_rho()

    @property
    def remaining(self) -> Cost:
        """What a new query may still reserve (under zCDP: its rho, and that rho's equivalent at the grant's delta)."""
        if self.zcdp:
            return self.at_grant_delta(self.initial_rho - self.spent_rho - self.reserved_rho)
        return self.initial - self.spent - self.reserved

    @property
    def remaining_after_spent(self) -> Cost:
        """initial - spent, as Lomas reports `remaining` (reservations in flight not subtracted)."""
        if self.zcdp:
            return self.at_grant_delta(self.initial_rho - self.spent_rho)
        return self.initial - self.spent

    @property
    def reported_initial(self) -> Cost:
        """The initial budget as Lomas reports it: (epsilon, delta), under zCDP the equivalent at the grant's delta."""
        return self.at_grant_delta(self.initial_rho) if self.zcdp else self.initial

    @property
    def reported_spent(self) -> Cost:
        """What was spent, as Lomas reports it (under zCDP: the equivalent of the rho spent, at the grant's delta)."""
        return self.at_grant_delta(self.spent_rho) if self.zcdp else self.spent

    def at_grant_delta(self, rho: float) -> Cost:
        """`rho` with its epsilon at the grant's delta (conversions are not additive: each total is converted)."""
        rho = max(0.0, rho)
        return Cost(epsilon_of(rho, self.initial.delta), self.initial.delta, rho=rho)


def reserve(ledger: Ledger, uid: str, cost: Cost) -> Ledger:
    """Hold `cost` for query `uid`; refused when it does not fit what remains (under zCDP: when its rho does not)."""
    if uid in ledger.reservations or uid in ledger.charged:
        return ledger
    if not ledger.may_query:
        raise UserNotAllowed(f"{ledger.user} is not allowed to query {ledger.dataset}.")
    if ledger.zcdp and cost.rho is None:
        raise NotExpressibleInZCDP()
    remaining = ledger.remaining
    fits = (cost.rho or 0.0) <= (remaining.rho or 0.0) + TOLERANCE if ledger.zcdp else cost.fits_in(remaining)
    if not fits:
        raise InsufficientBudget(remaining)
    reservations = ledger.reservations.with_cost(uid, cost)
    if reservations.size + ledger.charged.size > HELD_BYTES_LIMIT:
        raise GrantFull(len(ledger.reservations) + len(ledger.charged))
    return replace(ledger, reservations=reservations)


def charge(ledger: Ledger, uid: str) -> Ledger:
    """Move the reservation of `uid` to spent; charging again is a no-op."""
    if uid in ledger.charged:
        return ledger
    cost = ledger.reservations.get(uid)
    if cost is None:
        raise BudgetError(f"query {uid} has no reservation to charge")
    reservations = ledger.reservations.without(uid)
    charged = ledger.charged.with_cost(uid, cost)
    if ledger.zcdp:
        return replace(ledger, spent_rho=ledger.spent_rho + (cost.rho or 0.0), reservations=reservations,
                       charged=charged)
    return replace(ledger, spent=ledger.spent + cost, reservations=reservations, charged=charged)


def refund(ledger: Ledger, uid: str) -> Ledger:
    """Return the reservation of `uid` (nothing was released); a no-op once charged or never reserved."""
    if uid not in ledger.reservations:
        return ledger
    return replace(ledger, reservations=ledger.reservations.without(uid))


def forget(ledger: Ledger, uid: str) -> Ledger:
    """Drop the idempotency record of a charge once the query itself records it."""
    if uid not in ledger.charged:
        return ledger
    return replace(ledger, charged=ledger.charged.without(uid))


def settle(ledger: Ledger, uids: Iterable[str]) -> Ledger:
    """The queries `uids` have ended and their status records what they spent: return what is left of their
    reservations and forget their rows."""
    for uid in uids:
        ledger = forget(refund(ledger, uid), uid)
    return ledger


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


def _amount(value: Any, *, at_most: float = math.inf) -> float:
    """A stored epsilon, delta or rho: a finite number in [0, at_most], as a `Cost` would accept it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= at_most:
        raise ValueError(f"not a cost: {value!r}")
    return float(value)


def _costs(data: Mapping[str, str], key: str, *, zcdp: bool) -> Holds:
    """[epsilon, delta] per uid, and a third element, rho, on a zCDP grant (where it is required)."""
    text = data.get(key) or "{}"
    known = _recalled(text, zcdp)
    if known is not None:
        return known
    try:
        raw = json.loads(text)
        rows: dict[str, Row] = {
            str(uid): (_amount(v[0]), _amount(v[1], at_most=1.0), _amount(v[2]) if zcdp and len(v) > 2 else None)
            for uid, v in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidGrant(f"grant {key} is not readable") from exc
    if zcdp and any(row[2] is None for row in rows.values()):
        raise InvalidGrant(f"grant {key} holds a query without a rho cost on a zCDP grant")
    holds = Holds._of_rows(rows)
    _remember(text, zcdp, holds)
    return holds


def _accounting(data: Mapping[str, str]) -> Accounting:
    raw = (data.get("accounting") or Accounting.APPROX_DP.value).strip()
    for accounting in Accounting:
        if raw.lower() == accounting.value.lower():
            return accounting
    raise InvalidGrant(f"grant accounting must be one of {', '.join(Accounting)}, not {raw!r}")


def _zcdp_books(data: Mapping[str, str], initial_delta: float) -> tuple[float, float, float]:
    """(initial rho, spent rho, the epsilon the admin targeted or the initial rho's equivalent) of a zCDP grant."""
    if not 0 < initial_delta < 1:
        raise InvalidGrant("a zCDP grant's initialDelta must be in (0, 1): its budget is reported at that delta")
    if data.get("initialRho") and data.get("initialEpsilon"):
        raise InvalidGrant("a zCDP grant takes initialRho or initialEpsilon, not both")
    if _float(data, "spentEpsilon", 0.0) or _float(data, "spentDelta", 0.0):
        raise InvalidGrant("this grant has spent (epsilon, delta): it cannot be switched to zCDP accounting")
    try:
        initial_rho = (_float(data, "initialRho") if data.get("initialRho")
                       else rho_of(_float(data, "initialEpsilon"), initial_delta))
    except ConversionError as exc:
        raise InvalidGrant(f"grant budget cannot be converted to rho: {exc}") from None
    return initial_rho, _float(data, "spentRho", 0.0), epsilon_of(initial_rho, initial_delta)


def from_data(data: Mapping[str, str]) -> Ledger:
    """Read a ledger from a grant ConfigMap's data."""
    if not data.get("user") or not data.get("dataset"):
        raise InvalidGrant("grant must name a user and a dataset")
    initial_delta = _float(data, "initialDelta", 0.0)
    if initial_delta > 1:
        raise InvalidGrant("grant initialDelta must be at most 1")
    accounting = _accounting(data)
    zcdp = accounting is Accounting.ZCDP
    if zcdp:
        initial_rho, spent_rho, initial_epsilon = _zcdp_books(data, initial_delta)
    else:
        if _float(data, "spentRho", 0.0):
            raise InvalidGrant("this grant has spent rho: it cannot be switched from zCDP accounting")
        initial_rho, spent_rho, initial_epsilon = 0.0, 0.0, _float(data, "initialEpsilon")
    return Ledger(
        user=data["user"],
        dataset=data["dataset"],
        initial=Cost(epsilon=initial_epsilon, delta=initial_delta),
        may_query=data.get("mayQuery", "true").strip().lower() not in ("false", "0", "no"),
        spent=Cost(_float(data, "spentEpsilon", 0.0), min(1.0, _float(data, "spentDelta", 0.0))),
        reservations=_costs(data, "reservations", zcdp=zcdp),
        charged=_costs(data, "charged", zcdp=zcdp),
        accounting=accounting,
        initial_rho=initial_rho,
        spent_rho=spent_rho,
    )


def to_data(ledger: Ledger) -> dict[str, str]:
    """The operator-kept keys of a grant ConfigMap (the admin's keys are left as they are)."""

    zcdp = ledger.zcdp
    spent = ({"spentRho": repr(ledger.spent_rho)} if zcdp
             else {"spentEpsilon": repr(ledger.spent.epsilon), "spentDelta": repr(ledger.spent.delta)})
    return {**spent, "reservations": ledger.reservations.stored(with_rho=zcdp),
            "charged": ledger.charged.stored(with_rho=zcdp)}
