"""A container's process is never left running unknown to the agent."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from dpkube.nodeagent.process import ContainerProcess, GroupedProcess, started_or_killed
from dpkube_testing.processes import is_running


async def test_a_start_cancelled_after_its_fork_kills_the_process(tmp_path: Path) -> None:
    forked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    recorded = asyncio.Event()

    async def start() -> GroupedProcess:
        process = await ContainerProcess.start(["sleep", "60"], env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                                               log_path=tmp_path / "log")
        forked.set_result(process.pid)
        await recorded.wait()
        return process

    starting = asyncio.create_task(started_or_killed(start()))
    pid = await forked
    starting.cancel()
    recorded.set()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert not is_running(pid)


async def test_a_start_that_is_not_cancelled_returns_its_running_process(tmp_path: Path) -> None:
    process = await started_or_killed(ContainerProcess.start(["sleep", "60"], env={"PATH": "/usr/bin:/bin"},
                                                             cwd=tmp_path, log_path=tmp_path / "log"))
    try:
        assert is_running(process.pid)
    finally:
        process.signal_group(signal.SIGKILL)
        await process.wait()
