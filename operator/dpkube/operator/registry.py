"""The operator's in-memory view of all DPQueries, for what needs more than one object at a time:
queue slots and FIFO order, dependency look-ups, timeouts, and Experiment/Queue counts.

It is a cache, never the truth: it is filled by a full listing before any handler runs and then by
watch events, and every decision that moves money is conditioned in the API server. Admissions are
recorded here at once (before their watch event arrives), so two admissions in a row cannot both take
the last slot of a queue. Every view is kept incrementally, so a backlog of ten thousand waiting
queries costs nothing per pass: a queue's order is a sorted list, its slots and an experiment's counts
are counters.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from dpkube.models.conditions import Reason
from dpkube.models.dpquery import Phase, admission_reason

ACTIVE = frozenset({Phase.ADMITTED, Phase.RUNNING})


@dataclass(frozen=True)
class Entry:
    uid: str
    namespace: str
    name: str
    created: str
    queue: str | None
    experiment: str | None
    phase: Phase | None
    reason: str | None
    deleting: bool
    depends_on: tuple[str, ...] = ()
    has_finalizer: bool = False
    dataset: str | None = None
    fresh: bool = field(default=False, compare=False)
    """First seen, unadmitted, after the start-up listing: no earlier replica can have made it a pod."""

    @property
    def waiting(self) -> bool:
        return not self.deleting and self.phase in (None, Phase.PENDING)

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    @property
    def order(self) -> tuple[str, str, str, str]:
        """First come, first served; ties broken by name."""
        return (self.created, self.namespace, self.name, self.uid)


def entry_of(body: dict[str, Any], fresh: bool = False) -> Entry:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    phase = status.get("phase")
    return Entry(
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        created=meta.get("creationTimestamp", ""),
        queue=spec.get("queue"),
        experiment=spec.get("experiment"),
        phase=Phase(phase) if phase else None,
        reason=admission_reason(body),
        deleting=bool(meta.get("deletionTimestamp")),
        depends_on=tuple(spec.get("dependsOn") or ()),
        has_finalizer=bool(meta.get("finalizers")),
        dataset=spec.get("dataset"),
        fresh=fresh and not phase,
    )


class Registry:
    """All known DPQueries by uid, with the derived views the scheduler needs, kept as entries change."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.dirty_experiments: set[tuple[str, str]] = set()
        self.dirty_queues: set[str] = set()
        self.listed = False
        """The start-up listing is done: entries seen from now on for the first time are new queries."""
        self._waiting: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        self._active: Counter[str] = Counter()
        self._experiments: dict[tuple[str, str], Counter[Phase]] = defaultdict(Counter)
        self._dependency_waits: set[str] = set()
        self._leaving: dict[str, asyncio.Future[None]] = {}
        self._turns: dict[str, asyncio.Future[None]] = {}
        """For a head of a queue, the `left_line` of the head before it: its slot is asked for after that one's."""

    def line_up(self, uids: list[str]) -> None:
        """The heads of one queue, first come first, all reconciled at once: each asks for its slot once the one
        before it is in line for its own (or is done), so slots are still taken in FIFO order while the heads'
        reads, prices and budget moves overlap, and their slots share writes."""
        lefts = [self.left_line(uid) for uid in uids]
        self._turns.update(zip(uids[1:], lefts, strict=False))

    async def my_turn(self, uid: str) -> None:
        """Return once the head before `uid` (if `line_up` named one) is in line for its slot, or done."""
        before = self._turns.pop(uid, None)
        if before is not None:
            await asyncio.wait({before})

    def done_in_line(self, uid: str) -> None:
        """The reconcile of a head is over, whether or not it asked for a slot: the next head's turn comes."""
        self._turns.pop(uid, None)
        self._left(uid)

    def left_line(self, uid: str) -> asyncio.Future[None]:
        """Done once the query is in line for a slot of its queue, or no longer waits (it ended or went)."""
        future = self._leaving.get(uid)
        if future is None or future.done():
            future = self._leaving[uid] = asyncio.get_running_loop().create_future()
            entry = self.entries.get(uid)
            if entry is None or not entry.waiting:
                self._left(uid)
        return future

    def in_slot_line(self, uid: str) -> None:
        """The query waits for its queue slot behind every query that came first (see `left_line`)."""
        self._left(uid)

    def _left(self, uid: str) -> None:
        future = self._leaving.pop(uid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def observe(self, body: dict[str, Any]) -> Entry:
        """Record the current state of one query (from a watch event or our own write)."""
        uid = body["metadata"]["uid"]
        previous = self.entries.get(uid)
        entry = entry_of(body, fresh=self.listed and previous is None)
        if previous is not None:
            entry = replace(entry, fresh=previous.fresh)
            if _rank(previous.phase) > _rank(entry.phase):
                # A stale watch event must not move a query backwards past what we already wrote.
                entry = replace(entry, phase=previous.phase, reason=previous.reason)
        self._put(entry, previous)
        return entry

    def set_phase(self, uid: str, phase: Phase | None, reason: str | None = None) -> None:
        """Record a phase we are about to write (or roll back one we did not)."""
        entry = self.entries.get(uid)
        if entry is not None:
            self._put(replace(entry, phase=phase, reason=reason), entry)

    def first_start(self, uid: str) -> bool:
        """Whether this is the first attempt to start a pod for a query no earlier replica can have seen
        (no pod of it can exist yet); later attempts must look for one."""
        entry = self.entries.get(uid)
        if entry is None or not entry.fresh:
            return False
        self.entries[uid] = replace(entry, fresh=False)
        return True

    def forget(self, uid: str) -> None:
        entry = self.entries.get(uid)
        if entry is not None:
            self._put(None, entry)

    def _put(self, entry: Entry | None, previous: Entry | None) -> None:
        """Replace `previous` by `entry` in every view (None: the query is gone)."""
        if previous is not None:
            self._unindex(previous)
        if entry is not None:
            self.entries[entry.uid] = entry
            self.by_name[(entry.namespace, entry.name)] = entry.uid
            self._index(entry)
        elif previous is not None:
            self.entries.pop(previous.uid, None)
            self.by_name.pop((previous.namespace, previous.name), None)
        if previous is not None and previous.waiting and (entry is None or not entry.waiting):
            self._left(previous.uid)
        for item in (entry, previous):
            if item is None:
                continue
            if item.experiment:
                self.dirty_experiments.add((item.namespace, item.experiment))
            if item.queue:
                self.dirty_queues.add(item.queue)

    def _index(self, entry: Entry) -> None:
        if entry.queue and entry.waiting:
            bisect.insort(self._waiting[entry.queue], entry.order)
        if entry.queue and entry.active:
            self._active[entry.queue] += 1
        if entry.experiment:
            self._experiments[(entry.namespace, entry.experiment)][entry.phase or Phase.PENDING] += 1
        if entry.waiting and entry.reason == Reason.WAITING_FOR_DEPENDENCY:
            self._dependency_waits.add(entry.uid)

    def _unindex(self, entry: Entry) -> None:
        if entry.queue and entry.waiting:
            order = self._waiting[entry.queue]
            index = bisect.bisect_left(order, entry.order)
            if index < len(order) and order[index] == entry.order:
                del order[index]
        if entry.queue and entry.active:
            self._active[entry.queue] -= 1
        if entry.experiment:
            self._experiments[(entry.namespace, entry.experiment)][entry.phase or Phase.PENDING] -= 1
        self._dependency_waits.discard(entry.uid)

    # -- views ---------------------------------------------------------------------------------

    def phase_of(self, namespace: str, name: str) -> Phase | bool | None:
        """The phase of a query by name: a Phase, None (no phase yet) or False (unknown query)."""
        uid = self.by_name.get((namespace, name))
        if uid is None:
            return False
        return self.entries[uid].phase

    def running(self, queue: str) -> int:
        return self._active[queue]

    def waiting(self, queue: str) -> list[Entry]:
        """Waiting queries of a queue, first come first."""
        return [self.entries[order[-1]] for order in self._waiting.get(queue, [])]

    def waiting_count(self, queue: str) -> int:
        return len(self._waiting.get(queue, []))

    def ready_heads(self, queue: str, limit: int) -> Iterator[Entry]:
        """The first `limit` waiting queries of a queue that no dependency holds back, in FIFO order."""
        taken = 0
        for order in self._waiting.get(queue, []):
            if taken >= limit:
                return
            entry = self.entries[order[-1]]
            if entry.reason != Reason.WAITING_FOR_DEPENDENCY:
                taken += 1
                yield entry

    def positions(self, queue: str) -> Iterator[tuple[Entry, int]]:
        """Each waiting query of a queue with its place (1 = next), in FIFO order."""
        for place, order in enumerate(self._waiting.get(queue, []), start=1):
            yield self.entries[order[-1]], place

    def ahead_of(self, uid: str, passing: Collection[str] = (), limit: int | None = None) -> int:
        """Waiting queries of the same queue that came first and are not blocked by a dependency (nor in
        `passing`: granted a slot by the write being prepared), counted up to `limit`: admission asks only
        whether anyone is ahead, and counting whole positions for a burst of thousands is quadratic."""
        entry = self.entries.get(uid)
        if entry is None or entry.queue is None:
            return 0
        ahead = 0
        for order in self._waiting.get(entry.queue, []):
            if order[-1] == uid or ahead == limit:
                return ahead
            if self.entries[order[-1]].reason != Reason.WAITING_FOR_DEPENDENCY and order[-1] not in passing:
                ahead += 1
        return ahead

    def experiment_counts(self, namespace: str, experiment: str) -> Counter[Phase]:
        return +self._experiments.get((namespace, experiment), Counter())

    def dependency_waiters(self) -> list[Entry]:
        """Queries waiting for a dependency to end."""
        return [self.entries[uid] for uid in self._dependency_waits if uid in self.entries]

    def waiting_queues(self) -> list[str]:
        return [queue for queue, order in self._waiting.items() if order]

    def dependencies_settled(self, entry: Entry) -> bool:
        """All of the entry's dependencies have ended (or are unknown), so its wait may be over."""
        for name in entry.depends_on:
            phase = self.phase_of(entry.namespace, name)
            if phase is not False and (phase is None or phase is True or not phase.terminal):
                return False
        return True

    def queue_names(self) -> set[str]:
        return {e.queue for e in self.entries.values() if e.queue}


def _rank(phase: Phase | None) -> int:
    """How far a query has come. No phase comes before Pending: the registry may know a query waits before its
    status says so (`Reconciler._wait_unwritten`)."""
    if phase is None:
        return -1
    if phase.terminal:
        return 3
    return {Phase.PENDING: 0, Phase.ADMITTED: 1, Phase.RUNNING: 2}[phase]
