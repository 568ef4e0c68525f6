"""Status transitions follow Kubernetes conventions, on the typed status model and an injected clock."""

from __future__ import annotations

import datetime as dt

from dpkube.models.conditions import ConditionStatus, ConditionType
from dpkube.models.dpquery import DPQueryStatus, Phase
from dpkube.operator.domain import status as S

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
EMPTY = DPQueryStatus()


def test_a_terminal_phase_gets_a_completion_time_and_a_complete_condition() -> None:
    new = S.transition(EMPTY, Phase.SUCCEEDED, "Succeeded", "result released", T0)
    assert new.phase == Phase.SUCCEEDED and new.completion_time == T0
    complete = S.condition(new, ConditionType.COMPLETE)
    assert complete is not None and complete.status == ConditionStatus.TRUE and complete.reason == "Succeeded"


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    first = S.set_condition(EMPTY, ConditionType.ADMITTED, False, "QueueLocked", "locked", T0)
    again = S.set_condition(first, ConditionType.ADMITTED, False, "QueueFull", "full", T1)
    (condition,) = again.conditions
    assert condition.last_transition_time == T0 and condition.reason == "QueueFull"


def test_a_changed_condition_gets_a_new_transition_time() -> None:
    first = S.set_condition(EMPTY, ConditionType.ADMITTED, False, "QueueLocked", "locked", T0)
    again = S.set_condition(first, ConditionType.ADMITTED, True, "Admitted", "ok", T1)
    assert again.conditions[0].last_transition_time == T1


def test_admission_records_when_it_happened() -> None:
    new = S.transition(EMPTY, Phase.ADMITTED, "Admitted", "reserved", T0)
    assert new.admitted_at == T0 and S.holds(new, ConditionType.ADMITTED)


def test_a_transition_leaves_its_input_unchanged() -> None:
    S.transition(EMPTY, Phase.FAILED, "Failed", "no", T0)
    assert DPQueryStatus() == EMPTY


def test_waiting_for_the_same_reason_again_writes_nothing() -> None:
    waiting = S.waiting(EMPTY, "QueueLocked", "queue q is locked", T0)
    assert waiting is not None and S.waiting(waiting, "QueueLocked", "queue q is locked", T1) is None


def test_the_serialised_status_is_camel_case_and_keeps_nulls_inside_results() -> None:
    status = S.transition(EMPTY, Phase.SUCCEEDED, "Succeeded", "ok", T0, result={"data": [[None, 1]]})
    out = S.serialise(status)
    assert out["result"] == {"data": [[None, 1]]} and out["completionTime"] == "2026-01-01T00:00:00Z"
    assert "podName" not in out and S.parse(out) == status
