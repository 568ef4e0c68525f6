"""The operator's periodic pass: wakes waiting queries whose wait may be over, enforces timeouts, and
keeps Experiment and Queue status counts current (written only when they change, kueue#8095).

Everything here is decided from the in-memory registry first, so a pass over thousands of queries
costs no API call unless something can actually move.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import functools
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import ExperimentCaps
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.k8s.timestamps import rfc3339
from dpkube.models.conditions import Reason
from dpkube.models.dpquery import Phase
from dpkube.models.kinds import EXPERIMENT, QUEUE
from dpkube.models.queue import QueueSpec
from dpkube.operator.domain import admission as rules
from dpkube.operator.experiments import ExperimentCascade
from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Entry, Registry
from dpkube.operator.warm import WarmPools

log = logging.getLogger(__name__)
WARM_UPKEEP_SECONDS = 1.0
MAX_RECONCILES_PER_PASS = 32
HEADS_PER_LINE = 128
"""Most heads of a queue without a concurrency limit reconciled together: their slots, grant movements
and writes are shared (group commits), so a longer line admits a backlog faster."""
LINES_IN_FLIGHT = 2
"""Most lines of one queue in flight at once: a line's pods and writes overlap the next line's reads, and no
more (each line is up to HEADS_PER_LINE admissions in flight)."""
RESYNC_SECONDS = 5.0
"""Level-based safety net: this often, the next few unfinished queries are looked at again, whatever the
events (a failed step is retried sooner, on its own backoff)."""
SETTLE_SECONDS = 1.0
"""Ended queries' grant rows not carried by a later movement within this long are written on their own."""
COUNTS_SECONDS = 1.0
"""Queue and experiment counts are written at most this often: every query moves them twice or more."""
RESYNC_BATCH = 64
"""Unfinished queries looked at per resync: a backlog of thousands is swept in turns, never all at once."""
RESYNC_QUIET_SECONDS = 30.0
"""A query seen or written this recently has its state known: the resync (a read of it and its pod) skips it."""
POSITION_SECONDS = 5.0
"""How often waiting queries' queue positions are brought up to date (Kueue refreshes its pending
workloads' positions every 5 s too): a draining backlog changes them all at every admission."""
POSITION_WRITES = 32
"""Most position writes per pass, nearest the head first."""
UNSEEN_AFTER_SECONDS = 10.0
"""A query still without a phase this long after creation missed its event; the resync picks it up."""

QUEUE_REASONS = frozenset({Reason.QUEUE_NOT_FOUND, Reason.QUEUE_LOCKED, Reason.QUEUE_FULL, Reason.WAITING_FOR_QUEUE})
"""Waits that end only when the queue lets the query in."""

PHASE_KEYS = {
    Phase.PENDING: "pending", Phase.ADMITTED: "admitted", Phase.RUNNING: "running",
    Phase.SUCCEEDED: "succeeded", Phase.FAILED: "failed", Phase.REJECTED: "rejected",
    Phase.TIMED_OUT: "timedOut", Phase.CANCELLED: "cancelled",
}


class Scheduler:
    """Runs `tick` every interval until cancelled."""

    def __init__(self, client: KubeClient, registry: Registry, reconciler: Reconciler, budgets: Budgets,
                 system_namespace: str, cascade: ExperimentCascade, audit_interval: float = 30.0,
                 warm: WarmPools | None = None, warm_namespaces: set[str] | None = None):
        self.client = client
        self.budgets = budgets
        self.cascade = cascade
        self.registry = registry
        self.reconciler = reconciler
        self.system_namespace = system_namespace
        self.queues: dict[str, dict[str, Any]] = {}
        self._written: dict[Any, Any] = {}
        self._last_audit = time.monotonic()
        self.last_tick = time.monotonic()
        self._last_resync = time.monotonic()
        self._last_positions = 0.0
        self._last_counts = 0.0
        self._last_settle = 0.0
        self._positions: dict[str, int] = {}
        """The queue position last written of each waiting query."""
        self._sweep_after: tuple[str, str] = ("", "")
        self.audit_interval = audit_interval
        self.warm = warm
        self.warm_namespaces = warm_namespaces or set()
        self._last_warm = 0.0
        self._lines: dict[str, list[_Line]] = {}
        """Each queue's lines of heads in flight, oldest first: the next line of that queue starts once the newest
        one's heads are all in line for their slots (see `heads`)."""

    def healthy(self, stale_after: float = 30.0) -> bool:
        """The periodic pass ran recently: the event loop is not stuck (a zombie operator, kopf#1276)."""
        return time.monotonic() - self.last_tick < stale_after

    async def run(self, interval: float) -> None:
        try:
            while True:
                try:
                    await self.tick()
                    self.last_tick = time.monotonic()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failed pass is retried on the next one
                    log.exception("scheduler pass failed")
                await asyncio.sleep(interval)
        finally:
            for lines in self._lines.values():
                for line in lines:
                    line.task.cancel()

    def released(self) -> list[Entry]:
        """Queries that waited for dependencies which have all ended: their wait may be over.

        A query not looked at yet (no phase) is the event handler's: reconciling it here too would multiply
        the API calls of a burst of new queries by the number of passes it takes.
        """
        return [e for e in self.registry.dependency_waiters()
                if e.phase is not None and self.registry.dependencies_settled(e)]

    def heads(self) -> dict[str, list[Entry]]:
        """The next heads of each open queue, as many as it has free slots (the pure queue rule decides, in FIFO
        order): a line is reconciled in its order, a head admitted lets the next one in. A line ends before the
        first query not waiting for the queue itself (e.g. not looked at yet): those after it cannot pass it,
        and reconciling them would only read them again.

        A queue without a concurrency limit starts its next line as soon as every head of the last one is in
        line for its slot: slots are still asked for in FIFO order, and the last line's pods, grant moves and
        writes overlap the next line's reads. A queue with a limit waits until its last line is done, so that
        its free slots are counted on settled admissions."""
        lines = {}
        for queue in self.registry.waiting_queues():
            raw = self.queues.get(queue)
            if raw is None:
                continue  # a queue's creation event brings its queries back
            spec = QueueSpec.model_validate(raw)
            in_flight = self._lines.get(queue, [])
            if in_flight and (spec.max_concurrent is not None or not in_flight[-1].slotted.done()
                              or len(in_flight) >= LINES_IN_FLIGHT):
                continue  # those lines go on first
            running = self.registry.running(queue)
            free = HEADS_PER_LINE if spec.max_concurrent is None else spec.max_concurrent - running
            facts = rules.QueueFacts(exists=True, locked=spec.locked, max_concurrent=spec.max_concurrent,
                                     running=running)
            if free <= 0 or rules.queue_ready(queue, facts).verdict is not rules.Verdict.ADMIT:
                continue
            members = set().union(*(line.members for line in in_flight))
            ready = (e for e in self.registry.ready_heads(queue, free + len(members))
                     if (e.namespace, e.name) not in members)
            heads = list(itertools.islice(itertools.takewhile(
                lambda e: e.phase is not None and e.reason in QUEUE_REASONS, ready), free))
            if heads:
                lines[queue] = heads
        return lines

    def unfinished(self) -> list[Entry]:
        """Queries past admission that have not settled: a failed step of theirs is retried from here."""
        cutoff = rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=UNSEEN_AFTER_SECONDS))
        return [e for e in self.registry.entries.values()
                if e.phase in (Phase.ADMITTED, Phase.RUNNING)
                or (e.phase is None and not e.deleting and e.created < cutoff)
                or (e.phase is not None and e.phase.terminal and e.has_finalizer)]

    async def _in_order(self, line: list[Entry]) -> None:
        """Reconcile a queue's heads at once; admission takes their slots in FIFO order (`Registry.line_up`)."""
        self.registry.line_up([entry.uid for entry in line])
        reconciles = []
        for entry in line:
            reconcile = asyncio.ensure_future(self._reconcile(entry))
            reconcile.add_done_callback(functools.partial(self._done_in_line, entry.uid))
            reconciles.append(reconcile)
        await asyncio.gather(*reconciles)

    def _done_in_line(self, uid: str, _: asyncio.Future[None]) -> None:
        self.registry.done_in_line(uid)

    async def _reconcile(self, entry: Entry) -> None:
        try:
            await self.reconciler.reconcile(entry.namespace, entry.name, remembered=True)
        except Exception:  # retried on its own backoff; the next in line may still go
            log.exception("reconcile of %s/%s failed", entry.namespace, entry.name)

    def _next_sweep(self) -> set[tuple[str, str]]:
        """The next RESYNC_BATCH unfinished queries that were quiet lately, in turn."""
        recall = self.reconciler.recall
        unfinished = sorted((e.namespace, e.name) for e in self.unfinished()
                            if recall.quiet(e.uid, RESYNC_QUIET_SECONDS))
        if not unfinished:
            return set()
        start = bisect.bisect_right(unfinished, self._sweep_after) % len(unfinished)
        chosen = (unfinished[start:] + unfinished[:start])[:RESYNC_BATCH]
        self._sweep_after = chosen[-1]
        return set(chosen)

    def _start_line(self, queue: str, heads: list[Entry]) -> None:
        """A queue's heads go on in the background: a long line never holds up the pass (or another queue)."""
        task = asyncio.create_task(self._in_order(heads))
        line = _Line(task, frozenset((e.namespace, e.name) for e in heads), self.registry.left_line(heads[-1].uid))
        self._lines.setdefault(queue, []).append(line)
        task.add_done_callback(lambda _: self._line_done(queue, line))

    def _line_done(self, queue: str, line: _Line) -> None:
        lines = self._lines.get(queue, [])
        if line in lines:
            lines.remove(line)
        if not lines:
            self._lines.pop(queue, None)

    def _being_admitted(self) -> set[tuple[str, str]]:
        """The queries of every line in flight."""
        return set().union(*(line.members for lines in self._lines.values() for line in lines))

    async def tick(self) -> None:
        for queue, line in self.heads().items():
            self._start_line(queue, line)
        released = self.released()
        targets = self.reconciler.recall.expired(time.time()) | self.reconciler.recall.due_retries(time.monotonic())
        if time.monotonic() - self._last_resync > RESYNC_SECONDS:
            self._last_resync = time.monotonic()
            targets |= self._next_sweep()
        in_line = {(e.namespace, e.name) for e in released} | self._being_admitted()
        await asyncio.gather(*(self._in_order([entry]) for entry in released), return_exceptions=True)
        for batch in _batches(sorted(targets - in_line), MAX_RECONCILES_PER_PASS):
            await asyncio.gather(*(self.reconciler.reconcile(ns, name) for ns, name in batch),
                                 return_exceptions=True)
        for namespace, name in list(self.cascade.deleting):
            await self.cascade.cascade(namespace, name)
        if time.monotonic() - self._last_settle > SETTLE_SECONDS:
            self._last_settle = time.monotonic()
            await self.budgets.flush_settled()
        if time.monotonic() - self._last_counts > COUNTS_SECONDS:
            self._last_counts = time.monotonic()
            await self.write_counts()
        if time.monotonic() - self._last_positions > POSITION_SECONDS:
            self._last_positions = time.monotonic()
            await self.write_positions()
        if self.warm is not None and time.monotonic() - self._last_warm > WARM_UPKEEP_SECONDS:
            self._last_warm = time.monotonic()
            pooled = {name: spec for name, spec in self.queues.items() if _pooled(spec)}
            if pooled:
                namespaces = self.warm_namespaces | {e.namespace for e in self.registry.entries.values()
                                                     if e.queue in pooled}
                await self.warm.maintain(pooled, namespaces)
        if time.monotonic() - self._last_audit > self.audit_interval:
            self._last_audit = time.monotonic()
            await self.audit_ledgers()

    async def audit_ledgers(self) -> None:
        """Return reservations and forget charges whose query is gone or ended long ago.

        Normally every ending cleans up after itself; this catches what a force-removed finalizer or
        a lost race left behind, so a budget (or an experiment's cap) is never held forever by a query
        that cannot run.
        """
        for grant in [*await self.budgets.list(), *await ExperimentCaps(self.budgets).all_books()]:
            stale = [uid for uid in [*grant.ledger.reservations, *grant.ledger.charged] if self._settled(uid)]
            if not stale:
                continue
            await self.budgets.move(grant, functools.partial(L.settle, uids=stale))
            log.warning("audit settled %d stale ledger entries of grant %s", len(stale), grant.name)

    def _settled(self, uid: str) -> bool:
        entry = self.registry.entries.get(uid)
        if entry is None:
            return True  # the registry holds every existing query: this one is gone
        return entry.phase is not None and entry.phase.terminal and not entry.has_finalizer

    async def write_counts(self) -> None:
        experiments, self.registry.dirty_experiments = self.registry.dirty_experiments, set()
        for namespace, name in experiments:
            counts = self.registry.experiment_counts(namespace, name)
            status = {"queries": {key: counts.get(phase, 0) for phase, key in PHASE_KEYS.items()},
                      "total": sum(counts.values())}
            await self._write_status(("experiment", namespace, name), EXPERIMENT.api_path(namespace, name), status)
        queues, self.registry.dirty_queues = self.registry.dirty_queues, set()
        if self.warm is not None:
            queues |= {name for name, spec in self.queues.items() if _pooled(spec)}
        for name in queues:
            status = {"running": self.registry.running(name), "waiting": self.registry.waiting_count(name),
                      "warm": self.warm.ready_count(name) if self.warm is not None else 0}
            await self._write_status(("queue", name), QUEUE.api_path(self.system_namespace, name), status)

    async def write_positions(self) -> None:
        """Each waiting query's place in its queue (kueue#1657), written only when it changed, and at most
        POSITION_WRITES per pass, nearest the head first: a long backlog is refreshed in turns. A head in a
        line in flight is being admitted: a write now would only make its admission's writes conflict."""
        changed: list[tuple[Entry, int]] = []
        waiting: set[str] = set()
        being_admitted = self._being_admitted()
        for queue in self.registry.waiting_queues():
            for entry, place in self.registry.positions(queue):
                waiting.add(entry.uid)
                if entry.phase is not None and self._positions.get(entry.uid) != place \
                        and (entry.namespace, entry.name) not in being_admitted:
                    changed.append((entry, place))
        self._positions = {uid: place for uid, place in self._positions.items() if uid in waiting}
        for entry, place in sorted(changed, key=lambda item: item[1])[:POSITION_WRITES]:
            await self.reconciler.show_place(entry.namespace, entry.name, place)
            self._positions[entry.uid] = place

    async def _write_status(self, key: Any, path: str, status: dict[str, Any]) -> None:
        if self._written.get(key) == status:
            return
        try:
            await self.client.patch(path + "/status", {"status": status})
        except NotFound:
            return
        self._written[key] = status


@dataclass(frozen=True)
class _Line:
    """A queue's heads being reconciled in the background, and who they are."""

    task: asyncio.Task[None]
    members: frozenset[tuple[str, str]]
    slotted: asyncio.Future[None]
    """Done once its last head is in line for its slot (so every head before it is), or no longer waits."""


def _pooled(spec: dict[str, Any]) -> bool:
    """A queue that keeps warm pods, at least while it is busy."""
    return bool(spec.get("warmPods") or spec.get("warmPodsMax"))


def _batches(items: list[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    """At most `size` reconciles in flight, so a pass never floods the API server."""
    return [items[i:i + size] for i in range(0, len(items), size)]
