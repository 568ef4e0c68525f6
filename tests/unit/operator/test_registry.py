"""The registry's views: FIFO order, slots in use, and late events never moving a query backwards."""

from __future__ import annotations

from dpkube.models.dpquery import Phase
from dpkube.operator.registry import Registry


def body(uid: str, created: str, phase: str | None = None, queue: str = "q", reason: str | None = None) -> dict:
    status = {"phase": phase} if phase else {}
    if reason:
        status["conditions"] = [{"type": "Admitted", "status": "False", "reason": reason}]
    return {"metadata": {"uid": uid, "namespace": "ns", "name": uid, "creationTimestamp": created},
            "spec": {"queue": queue}, "status": status}


def test_queries_wait_in_creation_order() -> None:
    registry = Registry()
    for uid, created in (("b", "2026-01-01T00:00:02Z"), ("a", "2026-01-01T00:00:01Z")):
        registry.observe(body(uid, created))
    assert [e.uid for e in registry.waiting("q")] == ["a", "b"]
    assert registry.ahead_of("b") == 1 and registry.ahead_of("a") == 0


def test_counting_who_is_ahead_stops_at_the_limit_and_skips_those_passing() -> None:
    registry = Registry()
    for i in range(5):
        registry.observe(body(f"q{i}", f"2026-01-01T00:00:0{i}Z"))
    assert registry.ahead_of("q4") == 4 and registry.ahead_of("q4", limit=1) == 1
    assert registry.ahead_of("q2", passing={"q0", "q1"}, limit=1) == 0


def test_a_query_blocked_by_a_dependency_does_not_hold_up_the_queue() -> None:
    registry = Registry()
    registry.observe(body("a", "2026-01-01T00:00:01Z", "Pending", reason="WaitingForDependency"))
    registry.observe(body("b", "2026-01-01T00:00:02Z"))
    assert registry.ahead_of("b") == 0


def test_admitted_and_running_queries_take_queue_slots() -> None:
    registry = Registry()
    registry.observe(body("a", "t1", "Admitted"))
    registry.observe(body("b", "t2", "Running"))
    registry.observe(body("c", "t3", "Succeeded"))
    assert registry.running("q") == 2


def test_a_late_event_does_not_move_a_query_backwards() -> None:
    registry = Registry()
    registry.observe(body("a", "t1", "Admitted"))
    registry.observe(body("a", "t1", None))
    assert registry.entries["a"].phase is Phase.ADMITTED


def test_an_event_without_a_phase_does_not_undo_a_wait_known_before_it_was_written() -> None:
    registry = Registry()
    registry.observe(body("a", "t1"))
    registry.set_phase("a", Phase.PENDING, "WaitingForQueue")
    registry.observe(body("a", "t1", None))
    assert (registry.entries["a"].phase, registry.entries["a"].reason) == (Phase.PENDING, "WaitingForQueue")


def test_a_dependency_wait_may_end_only_when_every_dependency_ended() -> None:
    registry = Registry()
    registry.observe(body("dep", "t1", "Running"))
    waiting = body("w", "t2", "Pending", reason="WaitingForDependency")
    waiting["spec"]["dependsOn"] = ["dep"]
    entry = registry.observe(waiting)
    assert not registry.dependencies_settled(entry)
    registry.observe(body("dep", "t1", "Succeeded"))
    assert registry.dependencies_settled(entry)


def test_positions_count_from_the_head_of_the_queue() -> None:
    registry = Registry()
    for uid, created in (("b", "t2"), ("a", "t1"), ("c", "t3")):
        registry.observe(body(uid, created, "Pending"))
    registry.observe(body("x", "t0", "Running"))
    assert [(entry.uid, place) for entry, place in registry.positions("q")] == [("a", 1), ("b", 2), ("c", 3)]


async def test_a_waiting_query_leaves_its_line_when_its_slot_is_taken() -> None:
    registry = Registry()
    registry.observe(body("a", "t1"))
    left = registry.left_line("a")
    assert not left.done()
    registry.set_phase("a", Phase.ADMITTED)
    assert left.done()


async def test_a_waiting_query_leaves_its_line_when_it_is_gone() -> None:
    registry = Registry()
    registry.observe(body("a", "t1"))
    left = registry.left_line("a")
    registry.forget("a")
    assert left.done()


async def test_a_query_that_does_not_wait_has_left_its_line_already() -> None:
    registry = Registry()
    registry.observe(body("a", "t1", "Running"))
    assert registry.left_line("a").done()
    assert registry.left_line("unknown").done()
