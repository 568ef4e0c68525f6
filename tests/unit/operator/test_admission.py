"""Admission rules, budget aside: what is rejected, what fails, what waits, what is admitted."""

from __future__ import annotations

from dpkube.models.dpquery import Phase
from dpkube.operator.domain.admission import ADMIT, Facts, QueueFacts, Verdict, decide


def facts(**overrides) -> Facts:
    return Facts(**{"dataset": "PENGUIN", "dataset_exists": True, **overrides})


def test_a_query_with_nothing_in_its_way_is_admitted() -> None:
    assert decide(facts()) == ADMIT


def test_an_unknown_dataset_is_rejected_with_the_lomas_message() -> None:
    decision = decide(facts(dataset="IRIS", dataset_exists=False))
    assert decision.verdict is Verdict.REJECT and decision.reason == "DatasetNotFound"
    assert decision.message == "Dataset IRIS does not exist. Please, verify the client object initialisation."


def test_a_locked_experiment_rejects_new_queries() -> None:
    decision = decide(facts(experiment="exp", experiment_locked=True))
    assert decision.verdict is Verdict.REJECT and decision.reason == "ExperimentLocked"


def test_an_unknown_experiment_rejects() -> None:
    assert decide(facts(experiment="exp", experiment_exists=False)).reason == "ExperimentNotFound"


def test_a_running_dependency_makes_the_query_wait() -> None:
    decision = decide(facts(dependencies={"first": Phase.RUNNING}))
    assert decision.verdict is Verdict.WAIT and decision.reason == "WaitingForDependency"


def test_a_failed_dependency_fails_the_query() -> None:
    decision = decide(facts(dependencies={"first": Phase.FAILED}))
    assert decision.verdict is Verdict.FAIL and "first ended Failed" in decision.message


def test_an_unknown_dependency_fails_the_query() -> None:
    decision = decide(facts(dependencies={"ghost": None}))
    assert decision.verdict is Verdict.FAIL and "ghost does not exist" in decision.message


def test_succeeded_dependencies_let_the_query_in() -> None:
    assert decide(facts(dependencies={"a": Phase.SUCCEEDED, "b": Phase.SUCCEEDED})) == ADMIT


def test_a_locked_queue_makes_queries_wait_not_fail() -> None:
    decision = decide(facts(queue_name="q", queue=QueueFacts(exists=True, locked=True)))
    assert decision.verdict is Verdict.WAIT and decision.reason == "QueueLocked"


def test_an_unknown_queue_makes_queries_wait_with_a_reason() -> None:
    decision = decide(facts(queue_name="q", queue=QueueFacts(exists=False)))
    assert decision.verdict is Verdict.WAIT and decision.reason == "QueueNotFound"


def test_a_full_queue_makes_queries_wait() -> None:
    decision = decide(facts(queue_name="q", queue=QueueFacts(exists=True, max_concurrent=2, running=2)))
    assert decision.verdict is Verdict.WAIT and decision.reason == "QueueFull"


def test_a_query_behind_others_waits_its_turn() -> None:
    decision = decide(facts(queue_name="q", queue=QueueFacts(exists=True, ahead=3)))
    assert decision.verdict is Verdict.WAIT and decision.message == "waiting for its turn in queue q"
