"""A queue's heads are admitted in lines: FIFO slots, with the next line of an open queue started as soon as
every head of the last one is in line for its slot, and a capped queue's next line only once the last is done."""

from __future__ import annotations

import asyncio
from typing import Any

from dpkube.operator.registry import Registry
from dpkube.operator.scheduler import Scheduler


class HeldReconciles:
    """Reconciles that last until the test lets them end."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def reconcile(self, namespace: str, name: str, remembered: bool = False) -> None:
        await self.release.wait()


def waiting(uid: str, second: int) -> dict[str, Any]:
    created = f"2026-01-01T00:00:{second:02}Z"
    return {"metadata": {"uid": uid, "namespace": "ns", "name": uid, "creationTimestamp": created},
            "spec": {"queue": "q"},
            "status": {"phase": "Pending", "conditions": [
                {"type": "Admitted", "status": "False", "reason": "WaitingForQueue"}]}}


def scheduler_of(registry: Registry, reconciler: HeldReconciles, queue: dict[str, Any]) -> Scheduler:
    scheduler = Scheduler(None, registry, reconciler, None, "dpkube-system", None)  # type: ignore[arg-type]
    scheduler.queues = {"q": queue}
    return scheduler


def names(heads: dict[str, list[Any]]) -> list[str]:
    return [entry.name for entry in heads.get("q", [])]


async def test_an_open_queues_next_line_starts_once_every_head_of_the_last_is_in_line_for_its_slot() -> None:
    registry, reconciler = Registry(), HeldReconciles()
    for i, uid in enumerate("abc"):
        registry.observe(waiting(uid, i))
    scheduler = scheduler_of(registry, reconciler, {})
    scheduler._start_line("q", scheduler.heads()["q"])
    await asyncio.sleep(0)
    for i, uid in enumerate("de", start=3):
        registry.observe(waiting(uid, i))

    assert names(scheduler.heads()) == []
    for uid in "abc":
        registry.in_slot_line(uid)
    assert names(scheduler.heads()) == ["d", "e"]
    reconciler.release.set()


async def test_a_capped_queues_next_line_starts_only_once_the_last_is_done() -> None:
    registry, reconciler = Registry(), HeldReconciles()
    for i, uid in enumerate("abcde"):
        registry.observe(waiting(uid, i))
    scheduler = scheduler_of(registry, reconciler, {"maxConcurrent": 10})
    scheduler._start_line("q", scheduler.heads()["q"][:3])
    await asyncio.sleep(0)
    for uid in "abc":
        registry.in_slot_line(uid)

    assert names(scheduler.heads()) == []
    reconciler.release.set()
    await asyncio.sleep(0.01)
    assert names(scheduler.heads()) == ["a", "b", "c", "d", "e"]
