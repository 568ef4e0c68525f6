"""Each user's steps run a bounded number at once, in the order they came, without holding up anyone else's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dpkube.operator.flows import Flows


class Work:
    """Work that records when it starts and runs until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    def item(self, label: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            self.started.append(label)
            await self.release.wait()
        return run


async def test_a_flow_runs_at_most_its_limit_at_once_and_the_rest_in_the_order_they_came() -> None:
    flows, work = Flows(per_flow=2), Work()
    tasks = [asyncio.create_task(flows.run("alice", work.item(f"a{n}"))) for n in range(5)]
    await asyncio.sleep(0.01)
    assert work.started == ["a0", "a1"]

    work.release.set()
    await asyncio.gather(*tasks)

    assert work.started == ["a0", "a1", "a2", "a3", "a4"]


async def test_another_users_work_starts_while_one_users_flow_is_full() -> None:
    flows, work = Flows(per_flow=2), Work()
    backlog = [asyncio.create_task(flows.run("alice", work.item(f"a{n}"))) for n in range(100)]
    lone = asyncio.create_task(flows.run("bob", work.item("b0")))
    await asyncio.sleep(0.01)

    assert work.started == ["a0", "a1", "b0"]
    work.release.set()
    await asyncio.gather(*backlog, lone)


async def test_a_flow_is_forgotten_once_its_work_is_done() -> None:
    flows, work = Flows(per_flow=2), Work()
    task = asyncio.create_task(flows.run("alice", work.item("a0")))
    await asyncio.sleep(0.01)
    assert flows.waiting("alice") == 1

    work.release.set()
    await task

    assert flows.waiting("alice") == 0
    assert not flows._flows


async def test_work_that_fails_leaves_its_turn_to_the_next() -> None:
    flows = Flows(per_flow=1)

    async def fail() -> None:
        raise RuntimeError("boom")

    done: list[str] = []

    async def succeed() -> None:
        done.append("next")

    failing = asyncio.create_task(flows.run("alice", fail))
    following = asyncio.create_task(flows.run("alice", succeed))
    results = await asyncio.gather(failing, following, return_exceptions=True)

    assert isinstance(results[0], RuntimeError) and done == ["next"]
    assert not flows._flows
