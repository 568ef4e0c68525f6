"""A container's process is never left running unknown to the agent."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpkube.nodeagent.process import ContainerProcess, GroupedProcess, started_or_killed
from dpkube.nodeagent.zygote import ForkedProcess
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


class Connection:
    """The zygote's side of a spawn connection: it sends the child's exit code when told."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader()
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def report_exit(self, code: int) -> None:
        self.reader.feed_data(json.dumps({"exit": code}).encode() + b"\n")


@pytest.fixture
def forked() -> Iterator[tuple[ForkedProcess, Connection]]:
    """A forked container (a process of its own group) whose exit code the zygote has not reported yet."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    connection = Connection()
    yield ForkedProcess(child.pid, connection.reader, connection), connection  # type: ignore[arg-type]
    child.kill()
    child.wait()


async def waiting_twice(process: ForkedProcess) -> tuple[asyncio.Task[int], asyncio.Task[int]]:
    """The pod's worker and the agent stopping, both waiting for the process to end."""
    worker, stopping = asyncio.create_task(process.wait()), asyncio.create_task(process.wait())
    await asyncio.sleep(0)
    return worker, stopping


async def test_the_agent_stopping_and_the_pods_worker_both_learn_a_forked_containers_exit_code(
    forked: tuple[ForkedProcess, Connection]
) -> None:
    process, connection = forked
    worker, stopping = await waiting_twice(process)

    connection.report_exit(143)

    assert await worker == 143 and await stopping == 143 and process.exited


async def test_a_waiter_cancelled_leaves_the_others_waiting_for_the_exit_code(
    forked: tuple[ForkedProcess, Connection]
) -> None:
    process, connection = forked
    worker, stopping = await waiting_twice(process)
    worker.cancel()

    connection.report_exit(0)

    assert await stopping == 0
