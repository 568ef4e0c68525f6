"""What the operator remembers of a query: its own last write is the current state, echoes are skipped."""

from __future__ import annotations

from dpkube.operator.recall import Recall


def body(version: int, phase: str | None = "Admitted", uid: str = "u1") -> dict:
    return {"metadata": {"uid": uid, "resourceVersion": str(version)}, "status": {"phase": phase} if phase else {}}


def test_an_event_older_than_the_last_write_is_an_echo() -> None:
    recall = Recall()
    recall.wrote(body(10))
    assert recall.is_echo(body(10)) and recall.is_echo(body(9)) and not recall.is_echo(body(11))


def test_the_newer_of_an_event_and_the_last_write_is_the_state() -> None:
    recall = Recall()
    recall.wrote(body(10, "Running"))
    assert recall.newest(body(9, "Admitted"))["status"]["phase"] == "Running"
    assert recall.newest(body(12, "Running"))["metadata"]["resourceVersion"] == "12"


def test_an_ended_query_is_no_longer_remembered() -> None:
    recall = Recall()
    recall.wrote(body(10, "Running"))
    recall.wrote(body(11, "Succeeded"))
    assert recall.body("u1") is None and not recall.is_echo(body(11, "Succeeded"))


def test_a_late_event_from_before_the_query_ended_is_skipped() -> None:
    recall = Recall()
    recall.keep(body(12, "Failed"))
    assert recall.newest(body(11, None)) is None
    assert recall.newest(body(13, "Failed"))["metadata"]["resourceVersion"] == "13"


def test_a_deleted_query_is_forgotten_with_its_end() -> None:
    recall = Recall()
    recall.keep(body(12, "Failed"))
    recall.forget("u1")
    assert recall.newest(body(5, None)) is not None


def test_a_failed_step_is_retried_after_a_growing_backoff() -> None:
    recall = Recall()
    recall.failed(("ns", "q"))
    first = recall._retries[("ns", "q")][0]
    recall.failed(("ns", "q"))
    assert recall._retries[("ns", "q")][0] > first
    assert recall.due_retries(first + 60) == {("ns", "q")}
    recall.succeeded(("ns", "q"))
    assert recall.due_retries(first + 60) == set()


def test_a_write_that_found_the_query_being_deleted_makes_no_echo() -> None:
    recall = Recall()
    recall.wrote(body(10))
    deleting = body(12)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    recall.wrote(deleting)
    assert not recall.is_echo(body(11)) and not recall.is_echo(deleting)


def test_a_query_is_quiet_until_seen_and_again_some_time_after() -> None:
    recall = Recall()
    assert recall.quiet("u1", 30)
    recall.keep(body(10, None))
    assert not recall.quiet("u1", 30) and recall.quiet("u1", 0)


def test_a_remembered_query_leaves_its_managed_fields_out() -> None:
    recall = Recall()
    written = body(10, "Running")
    written["metadata"]["managedFields"] = [{"manager": "dpkube-operator", "fieldsV1": {"f:status": {}}}]
    recall.wrote(written)
    assert "managedFields" not in recall.body("u1")["metadata"]
    assert recall.body("u1")["metadata"]["resourceVersion"] == "10" and "managedFields" in written["metadata"]


def waiting(reason: str) -> dict:
    pending = body(10, "Pending")
    pending["status"]["conditions"] = [{"type": "Admitted", "status": "False", "reason": reason}]
    return pending


def test_a_query_in_line_in_an_open_queue_is_remembered() -> None:
    recall = Recall()
    recall.wrote(waiting("WaitingForQueue"))
    assert recall.body("u1")["metadata"]["resourceVersion"] == "10"


def test_a_query_held_by_a_locked_queue_is_not_remembered() -> None:
    recall = Recall()
    recall.wrote(waiting("QueueLocked"))
    assert recall.body("u1") is None
