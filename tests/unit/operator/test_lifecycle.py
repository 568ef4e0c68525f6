"""The lifecycle's next step for every phase, pod state and runner output: the money rules as a table."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dpkube.models.conditions import Reason
from dpkube.models.cost import Cost
from dpkube.models.dpquery import DPQueryStatus, Mode, Phase
from dpkube.models.runner import RunnerOutput
from dpkube.operator.domain.lifecycle import (
    FINALIZER,
    GENERIC_FAILURE,
    Admit,
    CleanUp,
    End,
    MarkRunning,
    Nothing,
    PodPhase,
    PodView,
    QueryView,
    Release,
    StartPod,
    next_step,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
COST = Cost(0.1, 1e-5)
SQL = {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}
OK = RunnerOutput(ok=True, response={"data": [[1]]}, cost=COST)
LIBRARY_FAILED = RunnerOutput(ok=False, error={"kind": "external_library", "message": "Error fitting model: 39.1",
                                               "exception": "ValueError"})


def query(phase: Phase | None = Phase.RUNNING, *, mode: Mode = Mode.QUERY, data_read: bool = False,
          deleting: bool = False, finalized: bool = True, pod: str | None = "dpq-u1", timeout: str | None = None,
          admitted: dt.datetime | None = NOW, cost: Cost | None = COST) -> QueryView:
    spec: dict[str, Any] = {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql", "mode": mode,
                            "smartnoiseSql": SQL, **({"timeout": timeout} if timeout else {})}
    status: dict[str, Any] = {"cost": cost, "pod_name": pod, "admitted_at": admitted,
                              "data_read_at": NOW if data_read else None}
    if phase is not None:
        status["phase"] = phase
    body = {"metadata": {"uid": "u1", "name": "q", "namespace": "team",
                         "finalizers": [FINALIZER] if finalized else [],
                         **({"deletionTimestamp": "2026-01-01T12:00:00Z"} if deleting else {})},
            "spec": spec, "status": DPQueryStatus.model_validate(status).to_kube()}
    return QueryView.of(body)


def pod(phase: PodPhase = PodPhase.RUNNING, deadline: bool = False) -> PodView:
    return PodView(name="dpq-u1", phase=phase, deadline_exceeded=deadline)


# -- before admission --------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [None, Phase.PENDING])
def test_a_new_or_waiting_query_is_admitted(phase: Phase | None) -> None:
    assert next_step(query(phase, pod=None, admitted=None), None, None, NOW) == Admit()


def test_a_waiting_query_deleted_is_cancelled_free() -> None:
    step = next_step(query(Phase.PENDING, deleting=True, pod=None), None, None, NOW)
    assert isinstance(step, End) and step.phase == Phase.CANCELLED and not step.charge


# -- admitted, before the runner answers -------------------------------------------------------

def test_an_admitted_query_without_a_pod_gets_one() -> None:
    assert next_step(query(Phase.ADMITTED, pod=None), None, None, NOW) == StartPod()


def test_a_pod_that_runs_moves_a_dummy_query_to_running_once() -> None:
    assert next_step(query(Phase.ADMITTED, mode=Mode.DUMMY), pod(), None, NOW) == MarkRunning("dpq-u1")
    assert next_step(query(Phase.RUNNING, mode=Mode.DUMMY), pod(), None, NOW) == Nothing()


def test_a_private_query_whose_pod_runs_waits_for_its_runner_to_ask_leave_to_read() -> None:
    assert next_step(query(Phase.ADMITTED), pod(), None, NOW) == Nothing()


def test_a_pending_pod_changes_nothing() -> None:
    assert next_step(query(Phase.ADMITTED), pod(PodPhase.PENDING), None, NOW) == Nothing()


# -- the runner's output ------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [Phase.ADMITTED, Phase.RUNNING])
def test_an_output_at_the_reserved_cost_is_released(phase: Phase) -> None:
    assert next_step(query(phase, data_read=True), pod(), OK, NOW) == Release({"data": [[1]]})


def test_an_output_at_another_cost_is_never_released_and_still_charged() -> None:
    other = RunnerOutput(ok=True, response={"data": [[1]]}, cost=Cost(0.05, 1e-5))
    step = next_step(query(data_read=True), pod(), other, NOW)
    assert isinstance(step, End) and step.reason == Reason.COST_MISMATCH and step.charge


def test_a_library_failure_after_the_data_was_read_is_charged_and_generic() -> None:
    step = next_step(query(data_read=True), pod(), LIBRARY_FAILED, NOW)
    assert isinstance(step, End) and step.phase == Phase.FAILED and step.charge
    assert step.reason == Reason.FAILED_ON_PRIVATE_DATA
    assert step.message == f"{GENERIC_FAILURE} (ValueError)" and "39.1" not in step.message


def test_a_failure_before_the_data_was_read_is_free_and_says_why() -> None:
    refused = RunnerOutput(ok=False, error={"kind": "invalid_query", "message": "column x is not in the metadata"})
    step = next_step(query(), pod(), refused, NOW)
    assert isinstance(step, End) and not step.charge
    assert step.reason == Reason.INVALID_QUERY and step.message == "column x is not in the metadata"


def test_a_dummy_query_never_charges_and_keeps_the_librarys_message() -> None:
    step = next_step(query(mode=Mode.DUMMY), pod(), LIBRARY_FAILED, NOW)
    assert isinstance(step, End) and not step.charge and step.message == "Error fitting model: 39.1"


# -- endings other than the runner's -----------------------------------------------------------

@pytest.mark.parametrize("data_read", [False, True])
def test_a_pod_that_ends_without_a_result_fails_charged_exactly_when_it_read(data_read: bool) -> None:
    step = next_step(query(data_read=data_read), pod(PodPhase.FAILED), None, NOW)
    assert isinstance(step, End) and step.phase == Phase.FAILED and step.charge is data_read


@pytest.mark.parametrize("data_read", [False, True])
def test_a_pod_that_disappeared_fails_charged_exactly_when_it_read(data_read: bool) -> None:
    step = next_step(query(data_read=data_read), None, None, NOW)
    assert isinstance(step, End) and step.phase == Phase.FAILED and step.charge is data_read


@pytest.mark.parametrize("data_read", [False, True])
def test_past_its_deadline_a_query_times_out_charged_exactly_when_it_read(data_read: bool) -> None:
    step = next_step(query(data_read=data_read, timeout="30s"), pod(), None, NOW + dt.timedelta(seconds=30))
    assert isinstance(step, End) and step.phase == Phase.TIMED_OUT and step.stop_pod and step.charge is data_read


def test_before_its_deadline_a_query_runs_on() -> None:
    assert next_step(query(timeout="30s"), pod(), None, NOW + dt.timedelta(seconds=29)) == Nothing()


def test_the_kubelets_deadline_times_the_query_out_too() -> None:
    step = next_step(query(timeout="30s"), pod(PodPhase.FAILED, deadline=True), None, NOW)
    assert isinstance(step, End) and step.phase == Phase.TIMED_OUT


@pytest.mark.parametrize("data_read", [False, True])
def test_a_running_query_deleted_is_cancelled_charged_exactly_when_it_read(data_read: bool) -> None:
    step = next_step(query(data_read=data_read, deleting=True), pod(), None, NOW)
    assert isinstance(step, End) and step.phase == Phase.CANCELLED and step.stop_pod and step.charge is data_read


def test_a_deletion_wins_over_a_late_output() -> None:
    step = next_step(query(data_read=True, deleting=True), pod(), OK, NOW)
    assert isinstance(step, End) and step.phase == Phase.CANCELLED and step.charge


# -- after the end ------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [Phase.SUCCEEDED, Phase.FAILED, Phase.REJECTED, Phase.TIMED_OUT, Phase.CANCELLED])
def test_an_ended_query_is_cleaned_up_once(phase: Phase) -> None:
    assert next_step(query(phase), pod(), OK, NOW) == CleanUp()
    assert next_step(query(phase, finalized=False), pod(), OK, NOW) == Nothing()


def stored_query(generation: int, sql: str) -> dict[str, Any]:
    spec = {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql",
            "smartnoiseSql": {**SQL, "queryStr": sql}}
    return {"metadata": {"uid": "stored-once", "name": "q", "namespace": "team", "generation": generation},
            "spec": spec}


def test_a_stored_querys_spec_is_validated_once_per_generation() -> None:
    first = QueryView.of(stored_query(1, "SELECT COUNT(*) AS n FROM df"))
    again = QueryView.of({**stored_query(1, "SELECT COUNT(*) AS n FROM df"), "status": {"phase": "Admitted"}})
    changed = QueryView.of(stored_query(2, "SELECT AVG(x) AS m FROM df"))
    assert again.spec is first.spec and again.status.phase == Phase.ADMITTED
    assert changed.spec is not first.spec and changed.spec.smartnoise_sql is not None
    assert "AVG" in changed.spec.smartnoise_sql.query_str
