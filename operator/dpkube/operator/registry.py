"""The operator's in-memory view of all DPQueries, for what needs more than one object at a time:
queue slots and FIFO order, dependency look-ups, timeouts, and Experiment/Queue counts.

It is a cache, never the truth: it is filled by a full listing before any handler runs and then by
watch events, and every decision that moves money re-reads the object from the API server.
Admissions are recorded here at once (before their watch event arrives), so two admissions in a
row cannot both take the last slot of a queue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from dpkube.models.conditions import Reason
from dpkube.models.dpquery import Phase

ACTIVE = frozenset({Phase.ADMITTED, Phase.RUNNING})


@dataclass
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

    @property
    def waiting(self) -> bool:
        return not self.deleting and self.phase in (None, Phase.PENDING)

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE


def entry_of(body: dict[str, Any]) -> Entry:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    phase = status.get("phase")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    return Entry(
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        created=meta.get("creationTimestamp", ""),
        queue=spec.get("queue"),
        experiment=spec.get("experiment"),
        phase=Phase(phase) if phase else None,
        reason=(conditions.get("Admitted") or {}).get("reason"),
        deleting=bool(meta.get("deletionTimestamp")),
        depends_on=tuple(spec.get("dependsOn") or ()),
        has_finalizer=bool(meta.get("finalizers")),
        dataset=spec.get("dataset"),
    )


class Registry:
    """All known DPQueries by uid, with the derived views the scheduler needs."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.dirty_experiments: set[tuple[str, str]] = set()
        self.dirty_queues: set[str] = set()

    def observe(self, body: dict[str, Any]) -> Entry:
        """Record the current state of one query (from a watch event or our own write)."""
        entry = entry_of(body)
        previous = self.entries.get(entry.uid)
        if previous is not None and _rank(previous.phase) > _rank(entry.phase):
            # A stale watch event must not move a query backwards past what we already wrote.
            entry.phase, entry.reason = previous.phase, previous.reason
        self.entries[entry.uid] = entry
        self.by_name[(entry.namespace, entry.name)] = entry.uid
        self._mark(entry, previous)
        return entry

    def set_phase(self, uid: str, phase: Phase | None, reason: str | None = None) -> None:
        """Record a phase we are about to write (or roll back one we did not)."""
        entry = self.entries.get(uid)
        if entry is not None:
            previous = Entry(**vars(entry))
            entry.phase, entry.reason = phase, reason
            self._mark(entry, previous)

    def forget(self, uid: str) -> None:
        entry = self.entries.pop(uid, None)
        if entry is not None:
            self.by_name.pop((entry.namespace, entry.name), None)
            self._mark(entry, None)

    def _mark(self, entry: Entry, previous: Entry | None) -> None:
        for item in (entry, previous):
            if item is None:
                continue
            if item.experiment:
                self.dirty_experiments.add((item.namespace, item.experiment))
            if item.queue:
                self.dirty_queues.add(item.queue)

    def phase_of(self, namespace: str, name: str) -> Phase | bool | None:
        """The phase of a query by name: a Phase, None (no phase yet) or False (unknown query)."""
        uid = self.by_name.get((namespace, name))
        if uid is None:
            return False
        return self.entries[uid].phase

    def running(self, queue: str) -> int:
        return sum(1 for e in self.entries.values() if e.queue == queue and e.phase in ACTIVE)

    def waiting(self, queue: str) -> list[Entry]:
        """Waiting queries of a queue, first come first."""
        return sorted(
            (e for e in self.entries.values() if e.queue == queue and e.waiting),
            key=lambda e: (e.created, e.namespace, e.name),
        )

    def ahead_of(self, uid: str) -> int:
        """Waiting queries of the same queue that came first and are not blocked by a dependency."""
        entry = self.entries.get(uid)
        if entry is None or entry.queue is None:
            return 0
        ahead = 0
        for other in self.waiting(entry.queue):
            if other.uid == uid:
                return ahead
            if other.reason != Reason.WAITING_FOR_DEPENDENCY:
                ahead += 1
        return ahead

    def experiment_counts(self, namespace: str, experiment: str) -> Counter[Phase]:
        return Counter(
            e.phase or Phase.PENDING for e in self.entries.values()
            if e.namespace == namespace and e.experiment == experiment
        )

    def waiting_entries(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.waiting]

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
    if phase is None:
        return 0
    if phase.terminal:
        return 3
    return {Phase.PENDING: 0, Phase.ADMITTED: 1, Phase.RUNNING: 2}[phase]
