"""Status transitions of a DPQuery over the typed status model: phase, conditions and timestamps.

Pure and clock-injected: every function takes `now` and returns a new DPQueryStatus (the input is
never changed), so the reconciler writes exactly one serialised status per decision. A condition
keeps its lastTransitionTime while its status does not change (Kubernetes conventions).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dpkube.models.conditions import Condition, ConditionStatus, ConditionType, Reason
from dpkube.models.dpquery import DPQueryStatus, Phase


def set_condition(status: DPQueryStatus, type_: ConditionType, holds: bool, reason: str, message: str,
                  now: dt.datetime) -> DPQueryStatus:
    """The status with one condition set; an unchanged truth value keeps its transition time."""
    value = ConditionStatus.TRUE if holds else ConditionStatus.FALSE
    previous = condition(status, type_)
    since = previous.last_transition_time if previous is not None and previous.status == value else now
    updated = Condition(type=type_, status=value, reason=reason, message=message, last_transition_time=since)
    others = [c for c in status.conditions if c.type != type_]
    return status.model_copy(update={"conditions": [*others, updated]})


def condition(status: DPQueryStatus, type_: ConditionType) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def holds(status: DPQueryStatus, type_: ConditionType) -> bool:
    found = condition(status, type_)
    return found is not None and found.status == ConditionStatus.TRUE


def transition(status: DPQueryStatus, phase: Phase, reason: str, message: str, now: dt.datetime,
               **updates: Any) -> DPQueryStatus:
    """The status after moving to `phase`; terminal phases get a completionTime and a Complete condition."""
    new = status.model_copy(update={**updates, "phase": phase, "message": message})
    if phase == Phase.ADMITTED:
        new = set_condition(new, ConditionType.ADMITTED, True, reason, message, now)
        if new.admitted_at is None:
            new = new.model_copy(update={"admitted_at": now})
    elif phase == Phase.PENDING:
        new = set_condition(new, ConditionType.ADMITTED, False, reason, message, now)
    elif phase == Phase.RUNNING and new.start_time is None:
        new = new.model_copy(update={"start_time": now})
    if phase.terminal:
        new = set_condition(new, ConditionType.COMPLETE, True, reason, message, now)
        if phase == Phase.REJECTED:
            new = set_condition(new, ConditionType.ADMITTED, False, reason, message, now)
        new = new.model_copy(update={"completion_time": now, "queue_position": None})
    return new


def reading(status: DPQueryStatus, now: dt.datetime) -> DPQueryStatus:
    """Running, with the leave to read the private data recorded: from now on every ending is charged."""
    if status.phase != Phase.RUNNING:  # the leave to read is what says a private query runs
        status = transition(status, Phase.RUNNING, Reason.POD_RUNNING, f"pod {status.pod_name} is running", now)
    status = status.model_copy(update={"data_read_at": now})
    return set_condition(status, ConditionType.DATA_READ, True, Reason.DATA_READ,
                         "the runner reads the private data: the query is charged whatever happens from now on", now)


def waiting(status: DPQueryStatus, reason: str, message: str, now: dt.datetime) -> DPQueryStatus | None:
    """Pending with the Admitted condition saying why not yet; None when that is already what it says."""
    admitted = condition(status, ConditionType.ADMITTED)
    if status.phase == Phase.PENDING and admitted is not None and admitted.reason == reason \
            and status.message == message:
        return None  # nothing changed: write nothing (kueue#8095)
    return transition(status, Phase.PENDING, reason, message, now)


def parse(raw: dict[str, Any] | None) -> DPQueryStatus:
    """A status as the API server stores it (an empty or missing status is a new query's)."""
    return DPQueryStatus.model_validate(raw or {})


def serialise(status: DPQueryStatus) -> dict[str, Any]:
    """The one serialiser of a DPQuery status: camelCase, unset optionals left out, nulls inside results kept."""
    return status.to_kube()
