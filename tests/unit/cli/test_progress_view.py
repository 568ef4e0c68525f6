"""How the CLI shows a query's progress: lines that stay in a log, a status line redrawn on a terminal."""

from __future__ import annotations

import io

from dpkube.cli.progress import ProgressView
from dpkube.models.dpquery import Phase
from dpkube.models.progress import QueryProgress


def progress(phase: Phase, place: int | None = None, elapsed: float = 0.0) -> QueryProgress:
    return QueryProgress(name="q", phase=phase, queue_position=place, elapsed_seconds=elapsed)


def test_in_a_log_each_change_of_phase_or_place_is_one_line() -> None:
    out = io.StringIO()
    with ProgressView(out, live=False) as view:
        for update in (progress(Phase.PENDING, 2), progress(Phase.PENDING, 2, 0.5), progress(Phase.PENDING, 1),
                       progress(Phase.RUNNING), progress(Phase.RUNNING, elapsed=3.0)):
            view.update(update)
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "q: Pending, #2 in its queue, 0.0 s", "q: Pending, #1 in its queue, 0.0 s", "q: Running, 0.0 s"]


def test_notes_are_stamped_with_the_time_since_the_start() -> None:
    out = io.StringIO()
    with ProgressView(out, live=False) as view:
        view.note("submitted")
    assert out.getvalue().startswith("[") and out.getvalue().rstrip().endswith("] submitted")


def test_on_a_terminal_phases_stay_and_the_status_line_is_cleared_at_the_end() -> None:
    out = io.StringIO()
    with ProgressView(out, live=True) as view:
        view.update(progress(Phase.PENDING, 1))
        view.update(progress(Phase.RUNNING, elapsed=1.0))
        view.note("done")
    text = out.getvalue()
    assert "q: Pending, #1 in its queue" in text and "q: Running" in text and "done" in text
