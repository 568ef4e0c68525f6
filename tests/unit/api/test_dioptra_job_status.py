"""A job's Dioptra status and lastModified, read from its DPQuery's phase, conditions and times."""

from __future__ import annotations

import pytest

from dpkube.api.services.dioptra.jobs import job_status, last_modified
from dpkube.models.conditions import Reason


def query(phase: str | None, reason: str | None = None, **status) -> dict:
    conditions = [{"type": "Admitted", "status": "False", "reason": reason,
                   "lastTransitionTime": "2026-01-02T03:04:06Z"}] if reason else []
    body = {"phase": phase, "conditions": conditions, **status} if phase else {}
    return {"metadata": {"creationTimestamp": "2026-01-02T03:04:05Z", "annotations": {}}, "status": body}


@pytest.mark.parametrize(("phase", "status"), [
    (None, "queued"), ("Pending", "queued"), ("Admitted", "queued"), ("Running", "started"),
    ("Succeeded", "finished"), ("Failed", "failed"), ("Rejected", "failed"), ("TimedOut", "failed"),
    ("Cancelled", "failed"),
])
def test_each_phase_maps_to_a_dioptra_status(phase, status) -> None:
    assert job_status(query(phase)) == status


def test_a_query_waiting_for_its_dependency_is_deferred() -> None:
    assert job_status(query("Pending", Reason.WAITING_FOR_DEPENDENCY)) == "deferred"


def test_a_query_waiting_for_its_queue_is_queued() -> None:
    assert job_status(query("Pending", Reason.QUEUE_LOCKED)) == "queued"


def test_last_modified_is_the_latest_transition_naive_utc() -> None:
    assert last_modified(query("Running", Reason.WAITING_FOR_DEPENDENCY,
                               startTime="2026-01-02T05:00:00.250000+02:00")) == "2026-01-02T03:04:06"


def test_last_modified_of_a_fresh_query_is_its_creation() -> None:
    assert last_modified(query(None)) == "2026-01-02T03:04:05"
