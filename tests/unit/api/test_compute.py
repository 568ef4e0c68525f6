"""The facade's gate to the worker pool: one user's jobs take turns, other users' jobs run beside them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from dpkube.api.errors import TooManyRequests
from dpkube.api.services.compute import WAITING_PER_USER, Compute
from dpkube.engine.pool import WorkerPool
from dpkube_testing import pool_jobs

HEAVY = ("numpy", "pandas", "snsql", "opendp", "diffprivlib", "snsynth", "torch", "sklearn")


@pytest.fixture
async def compute() -> AsyncIterator[Compute]:
    pool = WorkerPool(workers=2, timeout=10.0)
    await pool.start()
    yield Compute(pool, jobs_per_user=1)
    await pool.close()


def overlap(a: tuple[int, float, float], b: tuple[int, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


async def test_one_users_jobs_take_turns(compute: Compute) -> None:
    alices = await asyncio.gather(*(compute.run("alice", pool_jobs.timed_sleep, 0.3) for _ in range(3)))
    assert not any(overlap(a, b) for a in alices for b in alices if a is not b)


async def test_too_many_waiting_jobs_of_one_user_are_429(compute: Compute) -> None:
    running = [asyncio.create_task(compute.run("alice", pool_jobs.timed_sleep, 0.5))
               for _ in range(WAITING_PER_USER + 1)]
    await asyncio.sleep(0.1)
    with pytest.raises(TooManyRequests):
        await compute.run("alice", pool_jobs.add, 1, 2)
    assert await compute.run("bob", pool_jobs.add, 1, 2) == 3
    await asyncio.gather(*running)


def test_the_facade_imports_no_dp_library_and_no_pandas() -> None:
    script = ("import sys; from dpkube.api.main import create_app; from dpkube.api.settings import ApiSettings; "
              "from dpkube.k8s.client import KubeConfig, KubeClient; "
              "create_app(ApiSettings(cache=False), KubeClient(KubeConfig('https://127.0.0.1:9'))); "
              f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
