"""Status transitions of a DPQuery: phase, conditions (Kubernetes conventions) and timestamps.

Functions return the new status as the API stores it (camelCase dicts), so the reconciler can write
exactly what changed; a condition keeps its lastTransitionTime while its status does not change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dpkube.models.dpquery import Phase

# The condition types of a DPQuery.
ADMITTED = "Admitted"
POD_CREATED = "PodCreated"
CHARGED = "Charged"
COMPLETE = "Complete"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]], type_: str, status: bool, reason: str, message: str, at: str
) -> list[dict[str, Any]]:
    """The conditions with one of them set; unchanged status keeps its transition time."""
    value = "True" if status else "False"
    out = [dict(c) for c in conditions if c.get("type") != type_]
    previous = next((c for c in conditions if c.get("type") == type_), None)
    out.append({
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous["lastTransitionTime"]
        if previous and previous.get("status") == value and previous.get("lastTransitionTime") else at,
    })
    return out


def transition(status: dict[str, Any], phase: Phase, reason: str, message: str, **fields: Any) -> dict[str, Any]:
    """The status after moving to `phase` (terminal phases get a completionTime and a Complete condition)."""
    at = now()
    new = {**status, **{k: v for k, v in fields.items()}, "phase": phase.value, "message": message}
    conditions = list(status.get("conditions") or [])
    if phase == Phase.ADMITTED:
        conditions = set_condition(conditions, ADMITTED, True, reason, message, at)
        new.setdefault("admittedAt", at)
    elif phase == Phase.PENDING:
        conditions = set_condition(conditions, ADMITTED, False, reason, message, at)
    elif phase == Phase.RUNNING:
        new.setdefault("startTime", at)
    if phase.terminal:
        conditions = set_condition(conditions, COMPLETE, True, reason, message, at)
        if phase == Phase.REJECTED:
            conditions = set_condition(conditions, ADMITTED, False, reason, message, at)
        new["completionTime"] = at
    new["conditions"] = conditions
    return new


def waiting(status: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """Pending with the Admitted condition saying why not yet."""
    return transition(status, Phase.PENDING, reason, message)
