"""A query's progress as clients show it, read from the stored DPQuery."""

from __future__ import annotations

from dpkube.models.dpquery import SUBMITTED_AT_ANNOTATION, Phase
from dpkube.models.progress import QueryProgress


def query(status: dict | None = None, **meta) -> dict:
    return {"metadata": {"name": "q", "annotations": {SUBMITTED_AT_ANNOTATION: "100.0"}, **meta},
            "status": status or {}}


def test_a_query_not_looked_at_yet_is_pending() -> None:
    assert QueryProgress.of(query(), now=100.0).phase == Phase.PENDING


def test_a_waiting_query_shows_its_place_and_why_it_waits() -> None:
    progress = QueryProgress.of(query({"phase": "Pending", "queuePosition": 3, "message": "queue q is locked"}),
                                now=100.0)
    assert (progress.queue_position, progress.message) == (3, "queue q is locked")


def test_a_running_query_has_no_place_and_no_message() -> None:
    progress = QueryProgress.of(query({"phase": "Running", "queuePosition": 3, "message": "started"}), now=100.0)
    assert (progress.queue_position, progress.message) == (None, None)


def test_elapsed_time_counts_from_submission() -> None:
    assert QueryProgress.of(query(), now=112.5).elapsed_seconds == 12.5


def test_without_the_submission_annotation_elapsed_time_counts_from_creation() -> None:
    created = {"metadata": {"name": "q", "creationTimestamp": "1970-01-01T00:01:40Z"}}
    assert QueryProgress.of(created, now=110.0).elapsed_seconds == 10.0


def test_a_clock_behind_the_submission_shows_no_negative_time() -> None:
    assert QueryProgress.of(query(), now=90.0).elapsed_seconds == 0.0


def test_the_line_names_phase_place_reason_and_time() -> None:
    progress = QueryProgress(name="q", phase=Phase.PENDING, queue_position=2, message="queue q is full",
                             elapsed_seconds=1.25)
    assert progress.line() == "q: Pending, #2 in its queue (queue q is full), 1.2 s"
