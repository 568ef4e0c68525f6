"""The Event recorder: best effort, and bounded like client-go's (the newest are dropped when full)."""

from __future__ import annotations

import asyncio
from typing import Any

from dpkube.k8s import events
from dpkube.k8s.events import EventRecorder

QUERY = {"apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery",
         "metadata": {"name": "q", "namespace": "ns", "uid": "u"}}


class Server:
    """Stores the Events posted to it; holds every post until `opened` is set."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.opened = asyncio.Event()

    async def create(self, path: str, body: dict[str, Any], answer: bool = True) -> dict[str, Any]:
        await self.opened.wait()
        self.posted.append(body)
        return body


async def test_every_event_recorded_is_posted() -> None:
    server = Server()
    server.opened.set()
    recorder = EventRecorder(server, "test")  # type: ignore[arg-type]
    for i in range(20):
        recorder.record(QUERY, "Step", f"step {i}")
    await recorder.drain()
    assert sorted(e["message"] for e in server.posted) == sorted(f"step {i}" for i in range(20))
    assert {e["involvedObject"]["uid"] for e in server.posted} == {"u"}


async def test_events_recorded_while_the_queue_is_full_are_dropped_and_counted() -> None:
    server = Server()
    recorder = EventRecorder(server, "test")  # type: ignore[arg-type]
    extra = 5
    for i in range(events.MAX_QUEUED + 1 + extra):
        recorder.record(QUERY, "Step", f"step {i}")
        await asyncio.sleep(0)  # the poster takes its first event
    server.opened.set()
    await recorder.drain()
    assert recorder.dropped == extra
    assert sorted(e["message"] for e in server.posted) == \
        sorted(f"step {i}" for i in range(events.MAX_QUEUED + 1))


async def test_a_failed_post_is_logged_and_the_next_event_still_goes() -> None:
    server = Server()
    server.opened.set()
    failing = iter([True, False])

    async def create(path: str, body: dict[str, Any], answer: bool = True) -> dict[str, Any]:
        if next(failing):
            raise ConnectionError("down")
        return await Server.create(server, path, body)

    server.create = create  # type: ignore[method-assign]
    recorder = EventRecorder(server, "test")  # type: ignore[arg-type]
    recorder.record(QUERY, "Lost", "first")
    recorder.record(QUERY, "Kept", "second")
    await recorder.drain()
    assert [e["reason"] for e in server.posted] == ["Kept"]
