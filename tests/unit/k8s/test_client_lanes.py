"""A lane of the API client holds at most its share of the connections, so foreground requests pass a
background backlog instead of queueing behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from dpkube.k8s.client import KubeClient, KubeConfig


class SlowServer:
    """Answers every request after a pause, counting how many it holds at once."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.in_flight = 0
        self.most = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(self.pause)
        self.in_flight -= 1
        return web.json_response({"path": request.path})


@pytest.fixture
async def server() -> AsyncIterator[tuple[SlowServer, str]]:
    slow = SlowServer(0.2)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield slow, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_lane_holds_no_more_requests_at_once_than_its_turns(server: tuple[SlowServer, str]) -> None:
    slow, url = server
    async with KubeClient(KubeConfig(server=url), max_connections=8) as client:
        lane = client.lane(2)
        await asyncio.gather(*(lane.get(f"/background/{i}") for i in range(8)))
    assert slow.most == 2


async def test_a_foreground_request_passes_a_lanes_backlog(server: tuple[SlowServer, str]) -> None:
    _, url = server
    async with KubeClient(KubeConfig(server=url), max_connections=8) as client:
        lane = client.lane(2)
        backlog = [asyncio.create_task(lane.get(f"/background/{i}")) for i in range(20)]
        await asyncio.sleep(0.05)
        assert await client.get("/foreground") == {"path": "/foreground"}
        answered_before = sum(task.done() for task in backlog)
        await asyncio.gather(*backlog)
    assert answered_before <= 4  # through one pool of 8 it would come after 16 of them
