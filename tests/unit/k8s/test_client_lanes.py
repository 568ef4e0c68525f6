"""The API client's connection pool: a lane holds at most its share of the connections, so foreground
requests pass a background backlog instead of queueing behind it; a request waiting for a connection waits
its turn without a time limit, and only a server that stays silent times out. A caller that ignores an
answer need not have it parsed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from dpkube.k8s.client import KubeClient, KubeConfig, Unreachable


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


async def test_requests_queued_for_a_connection_longer_than_the_timeout_still_succeed(
        server: tuple[SlowServer, str]) -> None:
    _, url = server  # each answer takes 0.2 s, one connection: the fifth request waits 0.8 s for it
    async with KubeClient(KubeConfig(server=url), max_connections=1, timeout=0.5) as client:
        answers = await asyncio.gather(*(client.get(f"/queued/{i}") for i in range(5)))
    assert answers == [{"path": f"/queued/{i}"} for i in range(5)]


async def test_a_server_silent_longer_than_the_timeout_is_unreachable(server: tuple[SlowServer, str]) -> None:
    slow, url = server
    slow.pause = 1.0
    async with KubeClient(KubeConfig(server=url), timeout=0.3) as client:
        with pytest.raises(Unreachable):
            await client.get("/silent")


async def test_a_create_whose_answer_is_not_wanted_returns_nothing_parsed(server: tuple[SlowServer, str]) -> None:
    _, url = server
    async with KubeClient(KubeConfig(server=url)) as client:
        assert await client.create("/pods", {"kind": "Pod"}, answer=False) == {}
        assert await client.create("/pods", {"kind": "Pod"}) == {"path": "/pods"}
