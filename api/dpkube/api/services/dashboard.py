"""What the web dashboard (`/ui`) shows: a user's budgets, spend, queries and jobs; an admin's overview.

A user's queries come from the facade's one watch of DPQueries (feed.py): its view keeps a small
`DashboardEntry` of every query, filed under its user, so a page costs the caller's own entries and no
request to the API server, however many queries are stored. Budgets come from the grants' watch-fed view.
Both are read from the API server only while their view is not synced.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dpkube.api.services.dioptra import Dioptra
from dpkube.api.services.dioptra.jobs import NAME_PREFIX, job_status
from dpkube.api.services.dioptra.records import ORIGIN_LABEL
from dpkube.api.services.queries import USER_LABEL, user_hash
from dpkube.api.services.retry import retrying
from dpkube.budget import ledger as L
from dpkube.k8s.budgets import GRANT_LABEL, GRANT_SELECTOR
from dpkube.k8s.caps import CAP_SELECTOR, cap_of
from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.informer import Informer
from dpkube.models.cost import Cost
from dpkube.models.dpquery import Mode, Phase, submitted_at
from dpkube.models.kinds import DPQUERY, EXPERIMENT

log = logging.getLogger(__name__)

DASHBOARD_INDEX = "dashboard-by-user"
RECENT_QUERIES = 100
"""Queries listed on a user's page, newest first (the chart and the totals count them all)."""
RECENT_EVENTS = 50


@dataclass(frozen=True, slots=True)
class DashboardEntry:
    """What a dashboard page shows of one DPQuery, as compact as the feed can keep it."""

    name: str
    user: str
    dataset: str
    library: str
    mode: str
    phase: str
    submitted: float
    """Unix time of submission."""
    ended: float | None
    """Unix time of its terminal phase."""
    queue_position: int | None
    cost_epsilon: float | None
    """The cost priced at admission (reserved while in flight)."""
    spent_epsilon: float
    spent_delta: float
    job_status: str | None = None
    """The Dioptra status of a Dioptra job; None for any other query."""

    @property
    def job_id(self) -> str:
        return self.name.removeprefix(NAME_PREFIX)


def _unix(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def dashboard_entry(query: dict[str, Any]) -> DashboardEntry | None:
    """What the feed keeps of any DPQuery for the dashboard (None only for one it cannot read)."""
    meta, spec, status = query["metadata"], query.get("spec") or {}, query.get("status") or {}
    try:
        phase = status.get("phase") or Phase.PENDING.value
        spent, cost = status.get("spent") or {}, status.get("cost") or {}
        dioptra = (meta.get("labels") or {}).get(ORIGIN_LABEL) == "dioptra"
        return DashboardEntry(
            name=meta["name"], user=sys.intern(spec["user"]), dataset=sys.intern(spec["dataset"]),
            library=sys.intern(spec["library"]), mode=sys.intern(spec.get("mode", Mode.QUERY.value)),
            phase=sys.intern(phase), submitted=submitted_at(meta), ended=_unix(status.get("completionTime")),
            queue_position=status.get("queuePosition") if phase == Phase.PENDING.value else None,
            cost_epsilon=float(cost["epsilon"]) if "epsilon" in cost else None,
            spent_epsilon=float(spent.get("epsilon", 0.0)), spent_delta=float(spent.get("delta", 0.0)),
            job_status=job_status(query) if dioptra else None,
        )
    except (KeyError, TypeError, ValueError) as exc:  # the API server validated it: never let one break the feed
        log.warning("DPQuery %s has no dashboard entry: %s", meta.get("name"), exc)
        return None


def dashboard_key(kept: dict[str, Any]) -> str | None:
    """The index of dashboard entries by user."""
    entry = kept.get("dashboard")
    return entry.user if entry is not None else None


@dataclass(frozen=True)
class BudgetLine:
    """One grant as a page shows it."""

    user: str
    dataset: str
    initial: Cost
    spent: Cost
    reserved: Cost
    may_query: bool

    @property
    def remaining(self) -> Cost:
        """Initial minus spent, as Lomas reports it (reservations in flight not subtracted)."""
        return self.initial - self.spent


def budget_lines(grants: Iterable[dict[str, Any]], user: str | None = None) -> list[BudgetLine]:
    """The readable grants among ConfigMaps (of `user` only when given), by dataset then user."""
    lines = []
    for item in grants:
        data = item.get("data") or {}
        if ((item.get("metadata") or {}).get("labels") or {}).get(GRANT_LABEL) != "grant":
            continue
        if user is not None and data.get("user") != user:
            continue
        try:
            ledger = L.from_data(data)
        except L.InvalidGrant:
            log.warning("grant %s is unreadable", item["metadata"].get("name"))
            continue
        lines.append(BudgetLine(ledger.user, ledger.dataset, ledger.initial, ledger.spent, ledger.reserved,
                                ledger.may_query))
    return sorted(lines, key=lambda line: (line.dataset, line.user))


def spend_over_time(entries: Iterable[DashboardEntry]) -> dict[str, list[tuple[float, float]]]:
    """Per dataset, the epsilon spent so far after each charged query: (unix time, cumulative epsilon)."""
    charged = sorted((e for e in entries if e.spent_epsilon > 0),
                     key=lambda e: (e.ended or e.submitted, e.name))
    series: dict[str, list[tuple[float, float]]] = {}
    totals: dict[str, float] = {}
    for entry in charged:
        totals[entry.dataset] = totals.get(entry.dataset, 0.0) + entry.spent_epsilon
        series.setdefault(entry.dataset, []).append((entry.ended or entry.submitted, totals[entry.dataset]))
    return dict(sorted(series.items()))


def newest_first(entries: Iterable[DashboardEntry], limit: int) -> list[DashboardEntry]:
    return sorted(entries, key=lambda e: (e.submitted, e.name), reverse=True)[:limit]


@dataclass(frozen=True)
class UserView:
    """A data scientist's page."""

    user: str
    budgets: list[BudgetLine]
    spend: dict[str, list[tuple[float, float]]]
    queries: list[DashboardEntry]
    """The newest Lomas (non-Dioptra) queries."""
    query_count: int
    jobs: list[DashboardEntry]
    job_count: int


def user_view(user: str, grants: Iterable[dict[str, Any]], entries: Iterable[DashboardEntry],
              limit: int = RECENT_QUERIES) -> UserView:
    """The page of `user` from grant ConfigMaps and dashboard entries (anyone else's are left out)."""
    own = [e for e in entries if e.user == user]
    queries = [e for e in own if e.job_status is None]
    jobs = [e for e in own if e.job_status is not None]
    return UserView(user, budget_lines(grants, user), spend_over_time(own), newest_first(queries, limit),
                    len(queries), newest_first(jobs, limit), len(jobs))


@dataclass(frozen=True)
class QueueLine:
    name: str
    locked: bool


@dataclass(frozen=True)
class ExperimentLine:
    name: str
    total: int
    phases: dict[str, int]
    cap: Cost | None = None
    """What each (user, dataset) may spend in it, if it sets a cap."""
    spend: list[BudgetLine] = field(default_factory=list)
    """Each (user, dataset)'s spend against the cap."""


@dataclass(frozen=True)
class EventLine:
    at: str
    type: str
    reason: str
    kind: str
    name: str
    message: str


@dataclass(frozen=True)
class AdminView:
    """An admin's page."""

    grants: dict[str, list[BudgetLine]]
    """Every grant, by dataset."""
    queues: list[QueueLine]
    experiments: list[ExperimentLine]
    events: list[EventLine] = field(default_factory=list)


PHASE_KEYS = {"pending": "Pending", "admitted": "Admitted", "running": "Running", "succeeded": "Succeeded",
              "failed": "Failed", "rejected": "Rejected", "timedOut": "TimedOut", "cancelled": "Cancelled"}


def experiment_line(item: dict[str, Any], caps: Mapping[str, list[BudgetLine]] | None = None) -> ExperimentLine:
    """An Experiment's name, its queries by phase (as the operator counts them in its status) and, when it
    caps its spend, each (user, dataset)'s spend against the cap (`caps`, by experiment object name)."""
    status = item.get("status") or {}
    counts = status.get("queries") or {}
    name = (item.get("spec") or {}).get("displayName") or item["metadata"]["name"]
    return ExperimentLine(name, int(status.get("total") or 0),
                          {phase: int(counts.get(key) or 0) for key, phase in PHASE_KEYS.items()},
                          cap_of(item), list((caps or {}).get(item["metadata"]["name"], [])))


def cap_lines(books: Iterable[dict[str, Any]], namespace: str) -> dict[str, list[BudgetLine]]:
    """The experiment caps' books of `namespace`'s experiments, by experiment, as budget lines."""
    lines: dict[str, list[BudgetLine]] = {}
    for item in books:
        data = item.get("data") or {}
        if data.get("experimentNamespace") != namespace or not data.get("experiment"):
            continue
        try:
            ledger = L.from_data(data)
        except L.InvalidGrant:
            continue
        lines.setdefault(data["experiment"], []).append(
            BudgetLine(ledger.user, ledger.dataset, ledger.initial, ledger.spent, ledger.reserved, True))
    return {name: sorted(found, key=lambda line: (line.dataset, line.user)) for name, found in lines.items()}


def _event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
               or event["metadata"].get("creationTimestamp") or "")


def recent_events(events: Iterable[Mapping[str, Any]], limit: int = RECENT_EVENTS) -> list[EventLine]:
    """The newest Events first."""
    newest = sorted(events, key=_event_time, reverse=True)[:limit]
    return [EventLine(_event_time(e), str(e.get("type") or ""), str(e.get("reason") or ""),
                      str((e.get("involvedObject") or {}).get("kind") or ""),
                      str((e.get("involvedObject") or {}).get("name") or ""), str(e.get("message") or ""))
            for e in newest]


def grants_by_dataset(lines: Iterable[BudgetLine]) -> dict[str, list[BudgetLine]]:
    grouped: dict[str, list[BudgetLine]] = {}
    for line in lines:
        grouped.setdefault(line.dataset, []).append(line)
    return grouped


class Dashboard:
    """Reads the pages' data from the watch-fed views, or from the API server while they are not synced."""

    def __init__(self, client: KubeClient, query_namespace: str, system_namespace: str, dioptra: Dioptra,
                 feed: Informer | None = None, grants: Informer | None = None) -> None:
        self.client = client
        self.query_namespace = query_namespace
        self.system_namespace = system_namespace
        self.dioptra = dioptra
        self.feed = feed
        self.grants = grants

    async def user_view(self, user: str) -> UserView:
        return user_view(user, await self._grants(), await self._entries(user))

    async def admin_view(self) -> AdminView:
        experiments = await retrying(lambda: self.client.list_all(EXPERIMENT.api_path(self.query_namespace)))
        events = await retrying(lambda: self.client.list_all(core_path("events", self.query_namespace)))
        books = await retrying(lambda: self.client.list_all(core_path("configmaps", self.system_namespace),
                                                            label_selector=CAP_SELECTOR))
        caps = cap_lines(books, self.query_namespace)
        queues = [QueueLine(self.dioptra.queues.wire(q)["name"], bool((q.get("spec") or {}).get("locked")))
                  for q in await self.dioptra.queues.all()]
        return AdminView(grants_by_dataset(budget_lines(await self._grants())), queues,
                         sorted((experiment_line(e, caps) for e in experiments), key=lambda e: e.name),
                         recent_events(events))

    async def set_locked(self, queue: str, locked: bool) -> None:
        """Lock or unlock a queue, as the Dioptra route does."""
        await self.dioptra.queues.set_locked(queue, locked)

    async def _grants(self) -> list[dict[str, Any]]:
        if self.grants is not None and self.grants.synced:
            return list(self.grants.objects.values())
        return await retrying(lambda: self.client.list_all(core_path("configmaps", self.system_namespace),
                                                           label_selector=GRANT_SELECTOR))

    async def _entries(self, user: str) -> list[DashboardEntry]:
        if self.feed is not None and self.feed.synced:
            return [kept["dashboard"] for kept in self.feed.indexed(DASHBOARD_INDEX, user).values()]
        items = await retrying(lambda: self.client.list_all(DPQUERY.api_path(self.query_namespace),
                                                            label_selector=f"{USER_LABEL}={user_hash(user)}"))
        return [entry for item in items if (entry := dashboard_entry(item)) is not None and entry.user == user]
