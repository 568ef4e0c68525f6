"""CPU work on users' input, in the worker pool: never on the event loop, never the DP libraries in this process.

Every job has the pool's time limit; a user runs at most `jobs_per_user` jobs at once (per replica), so one
user's pathological payloads occupy one worker, not all of them. The functions below are the jobs: they run
in a worker and import the engine there, so importing this module imports no DP library and no pandas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dpkube.api.errors import TooManyRequests
from dpkube.engine.pool import WorkerPool
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library

WAITING_PER_USER = 8
"""Jobs of one user that may wait for their turn; more are answered 429."""
RETRY_SECONDS = 1


def price(library: Library, payload: dict[str, Any], metadata: Metadata) -> tuple[float, float]:
    """(epsilon, delta) of a query: the engine's own cost, in a worker."""
    from dpkube.engine.cost import estimate_cost

    cost = estimate_cost(library, payload, metadata)
    return cost.epsilon, cost.delta


def dummy_dataset(metadata: Metadata, rows: int, seed: int) -> dict[str, Any]:
    """The /get_dummy_dataset body, in a worker (numpy and pandas stay out of the facade)."""
    from dpkube.engine.dummy import dummy_dataset_response

    return dummy_dataset_response(metadata, rows, seed)


@dataclass
class _Turns:
    """One user's jobs: a semaphore of running ones, a count of waiting ones, and of both (to drop the entry)."""

    running: asyncio.Semaphore
    waiting: int = 0
    present: int = 0


class Compute:
    """The facade's gate to its worker pool: per-user turns, then the pool's own bounds."""

    def __init__(self, pool: WorkerPool, jobs_per_user: int = 1) -> None:
        self.pool = pool
        self.jobs_per_user = jobs_per_user
        self._turns: dict[str, _Turns] = {}

    async def run(self, user: str, fn: Callable[..., Any], /, *args: Any) -> Any:
        """`fn(*args)` in a worker, once `user` has a free turn; 429 when too many of theirs wait."""
        turns = self._turns.setdefault(user, _Turns(asyncio.Semaphore(self.jobs_per_user)))
        if turns.waiting >= WAITING_PER_USER:
            raise TooManyRequests(f"{turns.waiting} of your requests are waiting to be checked.", RETRY_SECONDS)
        turns.present += 1
        try:
            turns.waiting += 1
            try:
                await turns.running.acquire()
            finally:
                turns.waiting -= 1
            try:
                return await self.pool.run(fn, *args)
            finally:
                turns.running.release()
        finally:
            turns.present -= 1
            if turns.present == 0:
                del self._turns[user]
