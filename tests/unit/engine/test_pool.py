"""The worker pool: jobs run in other processes, within a time limit, with typed errors and a bounded queue."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest

from dpkube.engine.errors import ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.engine.pool import JobCrashed, JobTimedOut, PoolBusy, WorkerFailed, WorkerPool
from dpkube.models.payloads import Library
from dpkube_testing import pool_jobs, slow_import


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(workers=2, timeout=5.0, max_queued=8)
    await workers.start()
    yield workers
    await workers.close()


async def test_a_job_returns_its_result(pool: WorkerPool) -> None:
    assert await pool.run(pool_jobs.add, 2, 3) == 5


async def test_a_job_runs_in_a_worker_process_not_the_caller(pool: WorkerPool) -> None:
    pid = await pool.run(pool_jobs.pid)
    assert pid != os.getpid()
    assert pid in pool.pids


async def test_a_job_over_its_time_limit_is_refused_naming_the_limit(pool: WorkerPool) -> None:
    with pytest.raises(JobTimedOut, match=r"0\.5 s") as caught:
        await pool.run(pool_jobs.spin_forever, timeout=0.5)
    assert isinstance(caught.value, PayloadRejected)


async def test_a_timed_out_worker_is_killed_and_replaced() -> None:
    pool = WorkerPool(workers=1, timeout=0.5)
    await pool.start()
    try:
        before = await pool.run(pool_jobs.pid)
        with pytest.raises(JobTimedOut):
            await pool.run(pool_jobs.spin_forever)
        after = await pool.run(pool_jobs.pid)
        assert after != before
        assert not alive(before)
        assert pool.pids == [after]
    finally:
        await pool.close()


async def test_engine_errors_come_back_as_their_own_type_and_message(pool: WorkerPool) -> None:
    with pytest.raises(InvalidQuery, match=r"^bad column$"):
        await pool.run(pool_jobs.refuse, "bad column")


async def test_engine_errors_keep_their_attributes(pool: WorkerPool) -> None:
    with pytest.raises(ExternalLibraryError) as caught:
        await pool.run(pool_jobs.fail_in_library, "cannot map")
    assert (caught.value.library, caught.value.message) == (Library.OPENDP, "cannot map")


async def test_other_exceptions_become_worker_failed_with_the_class_name_only(pool: WorkerPool) -> None:
    with pytest.raises(WorkerFailed) as caught:
        await pool.run(pool_jobs.fail_unexpectedly)
    assert caught.value.message == "KeyError"


async def test_a_worker_that_dies_during_a_job_is_refused_and_replaced(pool: WorkerPool) -> None:
    with pytest.raises(JobCrashed):
        await pool.run(pool_jobs.crash)
    assert await pool.run(pool_jobs.add, 1, 1) == 2


async def test_what_a_job_prints_does_not_corrupt_its_reply(pool: WorkerPool) -> None:
    assert await pool.run(pool_jobs.printing) == "result"


async def test_no_more_jobs_run_at_once_than_there_are_workers(pool: WorkerPool) -> None:
    spans = await asyncio.gather(*(pool.run(pool_jobs.timed_sleep, 0.3) for _ in range(6)))
    edges = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2
    assert len({pid for pid, _, _ in spans}) == 2


async def test_a_job_past_a_full_queue_is_refused_at_once() -> None:
    pool = WorkerPool(workers=1, timeout=5.0, max_queued=1)
    await pool.start()
    try:
        await pool.run(pool_jobs.add, 0, 0)
        running = asyncio.create_task(pool.run(pool_jobs.sleep_then_pid, 1.0))
        queued = asyncio.create_task(pool.run(pool_jobs.add, 1, 2))
        while pool.waiting < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(PoolBusy):
            await pool.run(pool_jobs.add, 3, 4)
        assert await queued == 3
        await running
    finally:
        await pool.close()


async def test_close_leaves_no_worker_process() -> None:
    pool = WorkerPool(workers=2)
    await pool.start()
    await pool.wait_warm()
    pids = pool.pids
    await pool.close()
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)


async def test_a_job_after_close_is_refused() -> None:
    pool = WorkerPool()
    await pool.start()
    await pool.close()
    with pytest.raises(PoolBusy):
        await pool.run(pool_jobs.add, 1, 1)


async def test_workers_start_one_after_another() -> None:
    pool = WorkerPool(workers=2, preload=("dpkube_testing.slow_import",))
    await pool.start()
    try:
        await asyncio.sleep(slow_import.IMPORT_SECONDS / 3)
        assert (len(pool.pids), pool.warm) == (1, False)
        await pool.wait_warm()
        assert len(pool.pids) == 2
    finally:
        await pool.close()


async def test_preloaded_modules_are_imported_by_the_workers_only() -> None:
    pool = WorkerPool(preload=("wave",))
    await pool.start()
    try:
        assert await pool.run(pool_jobs.imported, "wave")
        assert "wave" not in sys.modules
    finally:
        await pool.close()


async def test_a_preload_that_cannot_be_imported_fails_jobs_as_worker_failed() -> None:
    pool = WorkerPool(preload=("dpkube.no_such_module",))
    await pool.start()
    try:
        with pytest.raises(WorkerFailed, match="ModuleNotFoundError"):
            await pool.run(pool_jobs.add, 1, 1)
    finally:
        await pool.close()


async def test_importing_a_jobs_module_does_not_count_against_its_time_limit() -> None:
    pool = WorkerPool(timeout=slow_import.IMPORT_SECONDS / 2)
    await pool.start()
    try:
        assert await pool.run(slow_import.pid) in pool.pids
    finally:
        await pool.close()


async def test_a_job_running_when_the_pool_closes_is_refused_as_busy() -> None:
    pool = WorkerPool()
    await pool.start()
    running = asyncio.create_task(pool.run(pool_jobs.sleep_then_pid, 5.0))
    await asyncio.sleep(0.5)
    await pool.close()
    with pytest.raises(PoolBusy):
        await running


async def test_a_pool_stays_warm_while_a_timed_out_worker_is_replaced() -> None:
    pool = WorkerPool(timeout=0.5)
    await pool.start()
    try:
        await pool.wait_warm()
        with pytest.raises(JobTimedOut):
            await pool.run(pool_jobs.spin_forever)
        assert pool.warm
    finally:
        await pool.close()
