"""Requests to one object that arrive during a write are committed together, in order, and a committer cut
short leaves no caller waiting."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.group_commit import GroupCommit


class Writes:
    """A commit step that records its batches and answers each request with itself, doubled."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.hold = hold

    async def __call__(self, batch: list[tuple[int, asyncio.Future[int]]]) -> None:
        self.batches.append([request for request, _ in batch])
        if self.hold is not None:
            await self.hold.wait()
        for request, done in batch:
            done.set_result(2 * request)


def cut_short(done: asyncio.Future[int]) -> None:
    done.set_result(-1)


async def test_a_lone_request_is_committed_alone() -> None:
    writes = Writes()
    assert await GroupCommit[int, int]().submit(3, writes, cut_short) == 6
    assert writes.batches == [[3]]


async def test_requests_arriving_during_a_write_share_the_next_one_in_their_order() -> None:
    hold = asyncio.Event()
    writes, line = Writes(hold), GroupCommit[int, int]()
    first = asyncio.create_task(line.submit(1, writes, cut_short))
    await asyncio.sleep(0)
    later = [asyncio.create_task(line.submit(n, writes, cut_short)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    hold.set()
    assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
    assert writes.batches == [[1], [2, 3, 4]]


async def test_a_cancelled_committer_cuts_short_every_request_it_left() -> None:
    writes, line = Writes(asyncio.Event()), GroupCommit[int, int]()
    committer = asyncio.create_task(line.submit(1, writes, cut_short))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(line.submit(2, writes, cut_short))
    await asyncio.sleep(0)
    committer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await committer
    assert await asyncio.wait_for(waiter, 1) == -1
    assert not line.committing and line.waiting == []
