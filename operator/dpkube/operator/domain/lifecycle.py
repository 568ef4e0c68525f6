"""A DPQuery's lifecycle as one pure function: from what is known now to the one next step.

Money rules, kept here and nowhere else:
- a result is released only through `Release`, and only when the runner's cost equals the reservation;
- once the runner was allowed to read the private data (status.dataReadAt), every other ending is
  charged too (a failure, a timeout, a lost pod, a deletion): a data-dependent outcome is never free;
- before that, every ending returns the reservation, because nothing depended on the data;
- after the data was read, the user learns only a generic failure (at most an exception's class name).
The same inputs give the same step, so a repeated or duplicated reconcile repeats nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dpkube.models.conditions import Reason
from dpkube.models.dpquery import RELEASE_FINALIZER, DPQuerySpec, DPQueryStatus, Mode, Phase
from dpkube.models.runner import RunnerOutput
from dpkube.operator.domain import status as S
from dpkube.operator.domain.durations import parse_duration

FINALIZER = RELEASE_FINALIZER
GENERIC_FAILURE = "the library failed on the private data; the query was charged"


@dataclass(frozen=True)
class QueryView:
    """What the lifecycle reads of a DPQuery, parsed once from the object the API server returned."""

    uid: str
    name: str
    namespace: str
    spec: DPQuerySpec
    status: DPQueryStatus
    deleting: bool = False
    finalized: bool = False
    """Our finalizer is on the object (it holds a reservation or a pod to clean up)."""

    @classmethod
    def of(cls, body: dict[str, Any]) -> QueryView:
        meta = body["metadata"]
        return cls(uid=meta["uid"], name=meta["name"], namespace=meta["namespace"],
                   spec=_spec(meta, body["spec"]), status=S.parse(body.get("status")),
                   deleting=bool(meta.get("deletionTimestamp")), finalized=FINALIZER in (meta.get("finalizers") or []))

    @property
    def data_read(self) -> bool:
        return self.status.data_read_at is not None

    @property
    def charged_on_ending(self) -> bool:
        """Whether an ending other than a release still spends the reservation."""
        return self.data_read and self.spec.mode == Mode.QUERY

    def deadline(self) -> dt.datetime | None:
        if not self.spec.timeout or self.status.admitted_at is None:
            return None
        return self.status.admitted_at + dt.timedelta(seconds=parse_duration(self.spec.timeout))


SPECS_KEPT = 4096
"""Specs kept validated (about 1.4 KiB each): enough for the steps of a queue's head lines in flight."""
_specs: dict[tuple[str, int], DPQuerySpec] = {}


def _spec(meta: dict[str, Any], raw: dict[str, Any]) -> DPQuerySpec:
    """A query's spec, validated once per generation: its payload checks were most of the cost of reading a
    query, and a query is read at every step. A body without a generation (never one the API server stored)
    is validated every time."""
    generation = meta.get("generation")
    if not isinstance(generation, int):
        return DPQuerySpec.model_validate(raw)
    key = (meta["uid"], generation)
    spec = _specs.get(key)
    if spec is None:
        spec = DPQuerySpec.model_validate(raw)
        if len(_specs) >= SPECS_KEPT:
            _specs.pop(next(iter(_specs)))
        _specs[key] = spec
    return spec


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class PodView:
    """What the lifecycle reads of the query's pod."""

    name: str
    phase: PodPhase
    deadline_exceeded: bool = False

    @classmethod
    def of(cls, body: dict[str, Any]) -> PodView:
        status = body.get("status") or {}
        terminated = ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get("terminated") or {}
        try:
            phase = PodPhase(status.get("phase") or PodPhase.PENDING)
        except ValueError:
            phase = PodPhase.PENDING
        return cls(name=body["metadata"]["name"], phase=phase,
                   deadline_exceeded="DeadlineExceeded" in (status.get("reason"), terminated.get("reason")))

    @property
    def ended(self) -> bool:
        return self.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)


# -- steps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nothing:
    """Nothing to do until something changes (a pod event, a delivery, the deadline)."""


@dataclass(frozen=True)
class Admit:
    """Decide admission: check, price, reserve, then start the pod."""


@dataclass(frozen=True)
class StartPod:
    """Admitted, but no pod is known to run the query (a crash between admission and the pod)."""


@dataclass(frozen=True)
class MarkRunning:
    """The pod of a query that reads no private data runs (a private query is marked running when its runner
    asks leave to read: one write instead of two, moments apart)."""

    pod: str


@dataclass(frozen=True)
class Release:
    """Charge (query mode), then publish the result and succeed."""

    response: Any


@dataclass(frozen=True)
class End:
    """A terminal phase other than a release: charged when the data was read, refunded otherwise."""

    phase: Phase
    reason: str
    message: str
    charge: bool
    stop_pod: bool = False


@dataclass(frozen=True)
class CleanUp:
    """After a terminal phase: the pod goes, the ledger forgets the uid, the finalizer comes off."""


Step = Nothing | Admit | StartPod | MarkRunning | Release | End | CleanUp


def next_step(query: QueryView, pod: PodView | None, output: RunnerOutput | None, now: dt.datetime) -> Step:
    """The one next step for `query`, given its pod (None: none exists) and a result delivered by its runner."""
    phase = query.status.phase
    if phase.terminal:
        return CleanUp() if query.finalized else Nothing()
    if query.deleting:
        return _ending(query, Phase.CANCELLED, Reason.CANCELLED, "deleted before it finished", stop_pod=True)
    if phase == Phase.PENDING:
        return Admit()
    if output is not None:
        return _delivered(query, output)
    deadline = query.deadline()
    if (deadline is not None and now >= deadline) or (pod is not None and pod.deadline_exceeded):
        return _ending(query, Phase.TIMED_OUT, Reason.TIMED_OUT, f"query ran longer than {query.spec.timeout}",
                       stop_pod=True)
    if pod is None:
        if query.status.pod_name is None:
            return StartPod()
        return _ending(query, Phase.FAILED, Reason.FAILED,
                       f"pod {query.status.pod_name} disappeared before it reported")
    if pod.ended:
        return _ending(query, Phase.FAILED, Reason.FAILED, f"pod {pod.name} ended {pod.phase.value} without a result")
    if pod.phase == PodPhase.RUNNING and phase != Phase.RUNNING and query.spec.mode != Mode.QUERY:
        return MarkRunning(pod.name)  # a private query's runner says it runs when it asks to read the data
    return Nothing()


def _delivered(query: QueryView, output: RunnerOutput) -> Step:
    """The runner's output: released when it succeeded at the reserved cost, an ending otherwise."""
    if output.ok:
        if not _same_cost(query.status, output):
            return _ending(query, Phase.FAILED, Reason.COST_MISMATCH,
                           "the runner reported a cost other than the reservation; nothing was released")
        return Release(output.response)
    error = output.error
    if error is None:
        return _ending(query, Phase.FAILED, Reason.FAILED, "the runner reported a failure without a cause")
    return _ending(query, Phase.FAILED, error.kind.reason, error.message, exception=error.exception)


def _ending(query: QueryView, phase: Phase, reason: str, message: str, *, stop_pod: bool = False,
            exception: str | None = None) -> End:
    """An ending that charges exactly when the data was read; its message never quotes a library then."""
    if query.charged_on_ending:
        if phase == Phase.FAILED and reason != Reason.COST_MISMATCH:
            reason = Reason.FAILED_ON_PRIVATE_DATA
            message = GENERIC_FAILURE + (f" ({exception})" if exception else "")
        else:
            message = f"{message}; the query was charged"
    return End(phase, reason, message, charge=query.charged_on_ending, stop_pod=stop_pod)


def _same_cost(status: DPQueryStatus, output: RunnerOutput) -> bool:
    reserved, reported = status.cost, output.cost
    if reserved is None or reported is None:
        return reserved is None and reported is None
    return all(math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
               for a, b in ((reserved.epsilon, reported.epsilon), (reserved.delta, reported.delta)))
