"""Status transitions follow Kubernetes conventions."""

from __future__ import annotations

from dpkube.models.dpquery import Phase
from dpkube.operator.domain import status as S


def test_a_terminal_phase_gets_a_completion_time_and_a_complete_condition() -> None:
    new = S.transition({}, Phase.SUCCEEDED, "Succeeded", "result released")
    assert new["phase"] == "Succeeded" and new["completionTime"]
    (complete,) = [c for c in new["conditions"] if c["type"] == S.COMPLETE]
    assert complete["status"] == "True" and complete["reason"] == "Succeeded"


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    first = S.set_condition([], "Admitted", False, "QueueLocked", "locked", "2026-01-01T00:00:00Z")
    again = S.set_condition(first, "Admitted", False, "QueueFull", "full", "2026-01-01T00:05:00Z")
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and again[0]["reason"] == "QueueFull"


def test_a_changed_condition_gets_a_new_transition_time() -> None:
    first = S.set_condition([], "Admitted", False, "QueueLocked", "locked", "2026-01-01T00:00:00Z")
    again = S.set_condition(first, "Admitted", True, "Admitted", "ok", "2026-01-01T00:05:00Z")
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_admission_records_when_it_happened() -> None:
    new = S.transition({}, Phase.ADMITTED, "Admitted", "reserved")
    assert new["admittedAt"] and new["conditions"][0]["status"] == "True"
