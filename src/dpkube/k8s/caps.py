"""Experiment caps: what an experiment's queries may spend per (user, dataset), on top of each user's grant.

A cap's books are a ledger whose initial is the cap, in a ConfigMap of their own per (experiment, user,
dataset) next to the grants (label `dpkube.io/budget=experiment-cap`), moved by `Budgets.move` with the
same compare-and-swap: the operator's namespace is out of users' reach and the facade may not write
budget ConfigMaps, while the Experiment itself (its status is rewritten by the phase counts, its spec by
its users) would make every movement contend with unrelated writes. The cap's value is the Experiment's
`spec.budget`; admission copies it into the books before reserving (never an older spec's over a newer
one's), so a changed cap applies to the next query. A cap only ever restricts: a query is reserved on
the cap, then on the grant, and refused if either refuses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import GRANT_LABEL, MAX_ATTEMPTS, Budgets, Grant
from dpkube.k8s.client import Conflict, NotFound, core_path
from dpkube.models.conditions import Reason
from dpkube.models.cost import Cost
from dpkube.models.dpquery import DPQuerySpec
from dpkube.models.experiment import ExperimentSpec

CAP = "experiment-cap"
CAP_SELECTOR = f"{GRANT_LABEL}={CAP}"
EXPERIMENT_LABEL = "dpkube.io/experiment-key"
"""A digest of (namespace, experiment): label values cannot hold every name; the data is the truth."""


class ExperimentBudgetExceeded(L.BudgetError):
    """The query does not fit what remains of its experiment's cap for its user and dataset."""

    reason = Reason.EXPERIMENT_BUDGET_EXCEEDED


@dataclass(frozen=True)
class CapKey:
    """Whose spend one cap's books hold."""

    namespace: str
    experiment: str
    user: str
    dataset: str


def cap_key(namespace: str, spec: DPQuerySpec) -> CapKey | None:
    """The cap books a query in `namespace` spends against, if it names an experiment."""
    if spec.experiment is None:
        return None
    return CapKey(namespace, spec.experiment, spec.user, spec.dataset)


def experiment_key(namespace: str, experiment: str) -> str:
    return hashlib.sha256(f"{namespace}\x00{experiment}".encode()).hexdigest()[:40]


def cap_name(key: CapKey) -> str:
    """A stable, valid ConfigMap name for a cap's books (readable where the names allow it)."""
    readable = re.sub(r"[^a-z0-9]+", "-", f"{key.experiment}-{key.user}-{key.dataset}".lower()).strip("-")[:40]
    digest = hashlib.sha256("\x00".join((key.namespace, key.experiment, key.user, key.dataset)).encode())
    return f"expcap-{readable}-{digest.hexdigest()[:10]}"


def cap_manifest(namespace: str, key: CapKey, cap: Cost, generation: int = 0) -> dict[str, Any]:
    """A cap's books as first written, with nothing spent."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cap_name(key), "namespace": namespace,
                     "labels": {GRANT_LABEL: CAP, EXPERIMENT_LABEL: experiment_key(key.namespace, key.experiment)}},
        "data": {"experimentNamespace": key.namespace, "experiment": key.experiment, "user": key.user,
                 "dataset": key.dataset, **initial_data(cap, generation)},
    }


def initial_data(cap: Cost, generation: int) -> dict[str, str]:
    """The cap as the Experiment's spec `generation` sets it."""
    return {"initialEpsilon": repr(float(cap.epsilon)), "initialDelta": repr(float(cap.delta)),
            "experimentGeneration": str(generation)}


def is_newer_cap(data: dict[str, str], generation: int) -> bool:
    """Whether a cap read from spec `generation` replaces the one in the books (an admission that read an older
    spec never puts back the cap it set)."""
    try:
        return generation > int(data.get("experimentGeneration") or 0)
    except ValueError:
        return True


def is_cap_of(item: dict[str, Any], key: CapKey) -> bool:
    """A labelled cap ConfigMap whose data names this experiment, user and dataset (never trusted by name)."""
    data = item.get("data") or {}
    labels = (item.get("metadata") or {}).get("labels") or {}
    return labels.get(GRANT_LABEL) == CAP and (data.get("experimentNamespace"), data.get("experiment"),
                                               data.get("user"), data.get("dataset")) == \
        (key.namespace, key.experiment, key.user, key.dataset)


def cap_of(experiment: dict[str, Any]) -> Cost | None:
    """The cap an Experiment sets, or None."""
    return ExperimentSpec.model_validate(experiment.get("spec") or {}).budget


def within_cap(movement: Callable[[L.Ledger], L.Ledger]) -> Callable[[L.Ledger], L.Ledger]:
    """A reservation on a cap, refused in the cap's own words."""

    def reserve(ledger: L.Ledger) -> L.Ledger:
        try:
            return movement(ledger)
        except L.InsufficientBudget as exc:
            raise ExperimentBudgetExceeded(
                f"The experiment's budget for {ledger.user} on {ledger.dataset} is exceeded: epsilon remaining "
                f"{exc.remaining.epsilon}, delta remaining {exc.remaining.delta}.") from None

    return reserve


def if_held(uid: str, movement: Callable[[L.Ledger], L.Ledger]) -> Callable[[L.Ledger], L.Ledger]:
    """`movement` on a cap's books only if they hold query `uid` (one admitted before the cap was set has none)."""

    def held(ledger: L.Ledger) -> L.Ledger:
        if uid not in ledger.reservations and uid not in ledger.charged:
            return ledger
        return movement(ledger)

    return held


@dataclass(frozen=True)
class CapRow:
    """One (user, dataset) of an experiment: its cap and what its queries spent and hold against it."""

    user: str
    dataset: str
    ledger: L.Ledger


class ExperimentCaps:
    """Cap books in the grants' namespace, moved by the grants' own `Budgets`."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.client = budgets.client
        self.namespace = budgets.namespace

    async def reserve(self, key: CapKey | None, experiment: dict[str, Any] | None, uid: str, cost: Cost,
                      on_grant: Callable[[], Awaitable[Any]]) -> None:
        """Reserve `cost` on the cap `experiment` (the Experiment as the caller read it) sets, if any, then
        `on_grant()`; the cap's reservation is returned if the grant refuses. Both steps are idempotent by uid,
        so a retry after a crash is safe."""
        cap = cap_of(experiment) if experiment is not None else None
        if key is None or experiment is None or cap is None:
            await on_grant()
            return
        books = await self._books(key, cap, int(experiment["metadata"].get("generation") or 0))
        await self.budgets.move(books, within_cap(lambda ledger: L.reserve(ledger, uid, cost)))
        try:
            await on_grant()
        except L.BudgetError:
            await self.budgets.move(books, lambda ledger: L.refund(ledger, uid))
            raise

    async def mirror(self, key: CapKey | None, uid: str, movement: Callable[[L.Ledger], L.Ledger]) -> None:
        """Apply to the cap's books the movement the grant just made for query `uid` (if they hold it)."""
        if key is None:
            return
        try:
            await self.budgets.move(cap_name(key), if_held(uid, movement))
        except NotFound:
            pass

    async def rows(self, namespace: str, experiment: str) -> list[CapRow]:
        """Every (user, dataset) that has spent or reserved against the experiment's cap."""
        items = await self.client.list_all(
            core_path("configmaps", self.namespace),
            label_selector=f"{CAP_SELECTOR},{EXPERIMENT_LABEL}={experiment_key(namespace, experiment)}")
        rows = []
        for item in items:
            data = item.get("data") or {}
            if (data.get("experimentNamespace"), data.get("experiment")) != (namespace, experiment):
                continue
            try:
                ledger = L.from_data(data)
            except L.InvalidGrant:
                continue
            rows.append(CapRow(ledger.user, ledger.dataset, ledger))
        return sorted(rows, key=lambda row: (row.user, row.dataset))

    async def all_books(self) -> list[Grant]:
        """Every readable cap's books (for the ledger audit)."""
        books = []
        for item in await self.client.list_all(core_path("configmaps", self.namespace), label_selector=CAP_SELECTOR):
            try:
                books.append(Grant(item["metadata"]["name"], item["metadata"]["resourceVersion"],
                                   L.from_data(item.get("data") or {}), item))
            except L.InvalidGrant:
                continue
        return books

    async def forget_experiment(self, namespace: str, experiment: str) -> None:
        """Delete an experiment's cap books (once none of its queries remains), so a new one starts afresh."""
        items = await self.client.list_all(
            core_path("configmaps", self.namespace),
            label_selector=f"{CAP_SELECTOR},{EXPERIMENT_LABEL}={experiment_key(namespace, experiment)}")
        for item in items:
            data = item.get("data") or {}
            if (data.get("experimentNamespace"), data.get("experiment")) != (namespace, experiment):
                continue
            try:
                await self.client.delete(core_path("configmaps", self.namespace, item["metadata"]["name"]),
                                         uid=item["metadata"]["uid"])
            except NotFound:
                pass

    async def _books(self, key: CapKey, cap: Cost, generation: int) -> Grant:
        """The cap's books, created on first use and carrying the cap as the Experiment sets it now."""
        path = core_path("configmaps", self.namespace, cap_name(key))
        for _ in range(MAX_ATTEMPTS):
            try:
                item = await self.client.get(path)
            except NotFound:
                try:
                    item = await self.client.create(core_path("configmaps", self.namespace),
                                                    cap_manifest(self.namespace, key, cap, generation))
                except Conflict:
                    continue
            if not is_cap_of(item, key):
                raise L.InvalidGrant(f"ConfigMap {cap_name(key)} is not the experiment cap it is named for")
            data = item.get("data") or {}
            if is_newer_cap(data, generation):
                try:
                    item = await self.client.replace(path, {**item, "data": {**data, **initial_data(cap, generation)}})
                except Conflict:
                    continue
            return Grant(item["metadata"]["name"], item["metadata"]["resourceVersion"],
                         L.from_data(item.get("data") or {}), item)
        raise L.BudgetError(f"experiment cap {cap_name(key)} kept changing")
