"""Admission of a pending DPQuery: gather the facts, apply the pure rules, price it, take its queue slot,
and reserve its cost, in that order; the outcome says what the reconciler writes.

Pricing runs in the pricing pool (never on the event loop, never in this process), on the metadata
read here; that snapshot is kept and is what the query's pod later runs on. A queue admission is
ordered against every lock by a conditioned bump of the queue's admission serial (kueue#1651).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, TypedDict

from dpkube.budget import ledger as L
from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import EngineError, ExternalLibraryError
from dpkube.engine.pool import PoolBusy, WorkerPool
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import ExperimentCaps, cap_key
from dpkube.k8s.client import Conflict, KubeClient, NotFound
from dpkube.k8s.datasets import Dataset, DatasetInvalid, Datasets
from dpkube.k8s.group_commit import GroupCommit
from dpkube.k8s.snapshots import Snapshots
from dpkube.models.conditions import Reason
from dpkube.models.cost import Cost
from dpkube.models.dpquery import Mode, Phase, phase_of
from dpkube.models.kinds import DPQUERY, EXPERIMENT, QUEUE
from dpkube.models.queue import QueueSpec
from dpkube.operator.domain import admission as rules
from dpkube.operator.domain.lifecycle import QueryView
from dpkube.operator.metrics import ADMISSIONS, PRICINGS
from dpkube.operator.registry import Registry

log = logging.getLogger(__name__)
MAX_QUEUE_RETRIES = 20
PRICES_KEPT = 50_000


@dataclass(frozen=True)
class Waiting:
    """Not yet: the reason is written into the Admitted condition."""

    reason: str
    message: str
    retry: bool = False
    """No event will bring the query back (its grant is full): it is tried again on its own backoff."""


@dataclass(frozen=True)
class Refused:
    """Never: a terminal phase, with nothing reserved that is not returned."""

    phase: Phase
    reason: str
    message: str


@dataclass(frozen=True)
class Priced:
    """A cost-mode query: its answer is the price; no pod, no budget."""

    cost: Cost


@dataclass(frozen=True)
class Admitted:
    """Reserved (query mode) or free (dummy mode): the pod may start."""

    cost: Cost
    metadata_digest: str
    dataset: Dataset
    queue: QueueSpec | None
    queue_serial: int | None = None


@dataclass(frozen=True)
class Slot:
    """A queue slot taken: the queue as the write left it, and the query's admission serial."""

    queue: QueueSpec
    serial: int


@dataclass(frozen=True)
class Busy:
    """The queue kept changing, or every pricing worker is busy: the scheduler brings the query back."""


Outcome = Waiting | Refused | Priced | Admitted | Busy


class ExperimentFacts(TypedDict, total=False):
    """What admission knows of the query's experiment (nothing when it names none)."""

    experiment_exists: bool
    experiment_locked: bool


class Admission:
    """Decides admissions (the reconciler holds each query's lock; a queue's admissions take turns)."""

    def __init__(self, client: KubeClient, system_namespace: str, registry: Registry, datasets: Datasets,
                 snapshots: Snapshots, budgets: Budgets, pricing: WorkerPool) -> None:
        self.client = client
        self.system_namespace = system_namespace
        self.registry = registry
        self.datasets = datasets
        self.snapshots = snapshots
        self.budgets = budgets
        self.caps = ExperimentCaps(budgets)
        self.pricing = pricing
        self._queues: dict[str, dict[str, Any]] = {}
        self._prices: dict[tuple[str, str], asyncio.Future[Cost]] = {}
        """Pricing jobs by (uid, metadata digest): running ones are shared, finished ones are the memo."""
        self._slot_lines: dict[str, GroupCommit[str, Slot | Waiting | Busy]] = defaultdict(GroupCommit)

    async def decide(self, query: QueryView, ensure_finalizer: Any) -> Outcome:
        """The admission outcome; `ensure_finalizer()` is awaited before any money moves."""
        spec = query.spec
        try:
            dataset = await self.datasets.get(spec.dataset)
        except DatasetInvalid as exc:
            return Refused(Phase.REJECTED, Reason.DATASET_NOT_FOUND, f"dataset {spec.dataset}: {exc}")
        experiment = await self._experiment(query.namespace, spec.experiment)
        cost_only = spec.mode == Mode.COST  # a price needs no pod, no budget, no other query: it never waits
        decision = rules.decide(rules.Facts(
            dataset=spec.dataset, dataset_exists=dataset is not None, experiment=spec.experiment,
            **experiment_facts(spec.experiment, experiment),
            dependencies={} if cost_only else await self._dependency_phases(query.namespace, spec.depends_on)))
        if decision.verdict in (rules.Verdict.REJECT, rules.Verdict.FAIL):
            return Refused(_terminal(decision), decision.reason, decision.message)
        assert dataset is not None
        closed = None if cost_only else self._closed_queue(spec.queue)
        if closed is not None:
            return closed
        priced = await self._price(query, dataset)
        if not isinstance(priced, Cost):
            return priced
        if cost_only:
            return Priced(priced)
        if decision.verdict is rules.Verdict.WAIT:
            return Waiting(decision.reason, decision.message)
        queue: QueueSpec | None = None
        serial: int | None = None
        if spec.queue:
            slot = await self._take_queue_slot(spec.queue, query.uid)
            if not isinstance(slot, Slot):
                return slot
            queue, serial = slot.queue, slot.serial
        await ensure_finalizer()
        if spec.mode == Mode.QUERY:
            try:
                grant = await self.budgets.find_to_move(spec.user, spec.dataset)
                on_grant = functools.partial(self.budgets.move, grant,
                                             functools.partial(L.reserve, uid=query.uid, cost=priced))
                await self.caps.reserve(cap_key(query.namespace, spec), experiment, query.uid, priced, on_grant)
            except L.GrantFull as exc:
                return Waiting(exc.reason, str(exc), retry=True)
            except L.BudgetError as exc:
                return Refused(Phase.REJECTED, exc.reason, str(exc))
        digest = await self.snapshots.keep(dataset.metadata, dataset.metadata_digest)
        ADMISSIONS.labels(query.namespace).inc()
        return Admitted(priced, digest, dataset, queue, serial)

    def observe_queue(self, body: dict[str, Any]) -> None:
        """A Queue as its watch saw it: admissions decide on the newest version known."""
        name = body["metadata"]["name"]
        known = self._queues.get(name)
        if known is None or int(body["metadata"]["resourceVersion"]) >= int(known["metadata"]["resourceVersion"]):
            self._queues[name] = body

    def forget_queue(self, name: str) -> None:
        self._queues.pop(name, None)

    def _closed_queue(self, name: str | None) -> Waiting | None:
        """Why the query's queue, as last seen, cannot admit anyone: a backlog held in a locked queue is
        not priced, so it never takes the pricing workers from queries that can go (issue 15's fairness).
        A queue not seen yet is decided on its stored version later, after pricing."""
        body = self._queues.get(name) if name else None
        if name is None or body is None or not (body.get("spec") or {}).get("locked"):
            return None
        decision = rules.queue_ready(name, rules.QueueFacts(exists=True, locked=True))
        return Waiting(decision.reason, decision.message)

    async def _take_queue_slot(self, name: str, uid: str) -> Slot | Waiting | Busy:
        """Take one of the queue's slots for `uid`, ordered against every change of the queue (kueue#1651).

        The queue's admission serial is bumped on the resourceVersion the decision was made on, so a lock
        (or a resize) that came in between makes the write fail and the decision is taken again. Admissions
        of one queue that arrive while a write is in flight are decided together, in the order they came,
        and take their slots in one write. A head reconciled by the scheduler asks only after the head before it.
        """
        await self.registry.my_turn(uid)
        self.registry.in_slot_line(uid)
        return await self._slot_lines[name].submit(uid, lambda batch: self._take_slots(name, batch), _cut_short)

    async def _take_slots(self, name: str, batch: list[tuple[str, asyncio.Future[Slot | Waiting | Busy]]]) -> None:
        """Decide a batch in its order on one version of the queue, and take the slots granted in one write."""
        fresh = False
        for _ in range(MAX_QUEUE_RETRIES):
            body = self._queues.get(name)
            if body is None or fresh:
                body = await self._queue_body(name)
                fresh = True
            if body is None:
                self._queues.pop(name, None)
                return _settle(batch, Waiting(Reason.QUEUE_NOT_FOUND, f"queue {name} does not exist"))
            self._queues[name] = body
            spec = QueueSpec.model_validate(body.get("spec") or {})
            decisions = self._slot_decisions(name, spec, [uid for uid, _ in batch])
            if not fresh and any(d.verdict is not rules.Verdict.ADMIT and d.reason != Reason.WAITING_FOR_QUEUE
                                 for d in decisions):
                fresh = True  # locked or full in a remembered version: make sure on the stored one
                continue
            granted = [uid for (uid, _), d in zip(batch, decisions, strict=True) if d.verdict is rules.Verdict.ADMIT]
            first = 0
            if granted:
                meta, status = body["metadata"], body.get("status") or {}
                try:
                    updated = await self.client.patch(QUEUE.api_path(meta["namespace"], name) + "/status", {
                        "metadata": {"resourceVersion": meta["resourceVersion"]},
                        "status": {"admissionSerial": int(status.get("admissionSerial") or 0) + len(granted)},
                    })
                except Conflict:
                    fresh = True  # the queue changed (locked, resized): decide again on what it is now
                    continue
                except NotFound:
                    self._queues.pop(name, None)
                    return _settle(batch, Waiting(Reason.QUEUE_NOT_FOUND, f"queue {name} does not exist"))
                self._queues[name] = updated
                spec = QueueSpec.model_validate(updated.get("spec") or {})
                first = int((updated.get("status") or {}).get("admissionSerial") or 0) - len(granted) + 1
                for uid in granted:
                    self.registry.set_phase(uid, Phase.ADMITTED)  # the slot is taken before the status says so
            serials = {uid: first + i for i, uid in enumerate(granted)}
            for (uid, slot), decision in zip(batch, decisions, strict=True):
                slot.set_result(Slot(spec, serials[uid]) if uid in serials
                                else Waiting(decision.reason, decision.message))
            return None
        return _settle(batch, Busy())

    def _slot_decisions(self, name: str, spec: QueueSpec, uids: list[str]) -> list[rules.Decision]:
        """The queue rule for each of `uids` in turn, each counting the slots granted to those before it."""
        granted: set[str] = set()
        decisions = []
        for uid in uids:
            decision = rules.queue_ready(name, rules.QueueFacts(
                exists=True, locked=spec.locked, max_concurrent=spec.max_concurrent,
                running=self.registry.running(name) + len(granted),
                ahead=self.registry.ahead_of(uid, granted, limit=1)))
            if decision.verdict is rules.Verdict.ADMIT:
                granted.add(uid)
            decisions.append(decision)
        return decisions

    async def _price(self, query: QueryView, dataset: Dataset) -> Cost | Refused | Busy:
        """The library's own cost, computed in the pricing pool on this metadata; a refusal is free.

        A query that waits is priced once per metadata version, not at every attempt to admit it.
        """
        key = (query.uid, dataset.metadata_digest)
        job = self._prices.get(key)
        if job is None:
            job = asyncio.ensure_future(self.pricing.run(estimate_cost, query.spec.library, query.spec.payload,
                                                         dataset.metadata))
            if len(self._prices) >= PRICES_KEPT:
                self._prices.pop(next(iter(self._prices)))
            self._prices[key] = job
            job.add_done_callback(lambda done: self._priced(key, query.namespace, done))
        try:
            return await asyncio.shield(job)
        except PoolBusy:
            return Busy()
        except ExternalLibraryError as exc:
            return Refused(Phase.REJECTED, Reason.LIBRARY_ERROR, exc.message)
        except EngineError as exc:
            return Refused(Phase.REJECTED, Reason.INVALID_QUERY, exc.message)

    def _priced(self, key: tuple[str, str], namespace: str, done: asyncio.Future[Cost]) -> None:
        """A job that failed is forgotten (the next attempt prices again); one that succeeded is counted."""
        if done.cancelled() or done.exception() is not None:
            if self._prices.get(key) is done:
                del self._prices[key]
        else:
            PRICINGS.labels(namespace).inc()

    async def _experiment(self, namespace: str, name: str | None) -> dict[str, Any] | None:
        """The query's Experiment, read once: its lock decides admission and its cap bounds the reservation."""
        if name is None:
            return None
        try:
            return await self.client.get(EXPERIMENT.api_path(namespace, name))
        except NotFound:
            return None

    async def _dependency_phases(self, namespace: str, names: list[str]) -> dict[str, Phase | None]:
        phases: dict[str, Phase | None] = {}
        for name in names:
            try:
                body = await self.client.get(DPQUERY.api_path(namespace, name))
            except NotFound:
                phases[name] = None
                continue
            phases[name] = phase_of(body) or Phase.PENDING
        return phases

    async def _queue_body(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(QUEUE.api_path(self.system_namespace, name))
        except NotFound:
            return None



def experiment_facts(name: str | None, body: dict[str, Any] | None) -> ExperimentFacts:
    """What admission knows of the experiment `name` from its body (None: it does not exist)."""
    if name is None:
        return {}
    if body is None:
        return {"experiment_exists": False}
    return {"experiment_locked": bool((body.get("spec") or {}).get("locked"))}


def _cut_short(slot: asyncio.Future[Slot | Waiting | Busy]) -> None:
    """An admission whose slot write was cut short (cancelled): the scheduler brings it back."""
    slot.set_result(Busy())


def _settle(batch: list[tuple[str, asyncio.Future[Slot | Waiting | Busy]]], outcome: Waiting | Busy) -> None:
    for _, slot in batch:
        slot.set_result(outcome)


def _terminal(decision: rules.Decision) -> Phase:
    return Phase.FAILED if decision.verdict is rules.Verdict.FAIL else Phase.REJECTED
