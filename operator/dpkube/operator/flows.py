"""A flow's watch-event steps (one user's, in one queue) run at most `per_flow` at once; the rest wait their turn,
holding only their body.

A burst that outruns the API connections would otherwise hold every step of it half-way, waiting for a
connection with its whole call stack: about 30 KiB per query, most of the operator's memory in a burst of
10,000. Bounding each flow separately keeps that memory small, while a lone query of another user, or of the
same user in another queue or in none, never waits behind the backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

STEPS_PER_FLOW = 1024
"""Enough for one flow's admissions to share large group commits of their grant (128 cost a burst of 3000 without a
queue about 12% of its rate); 1024 steps in flight hold about 30 MiB."""


@dataclass
class _Flow:
    turns: asyncio.Semaphore
    holders: int = field(default=0)
    """Work that runs or waits in this flow."""


class Flows:
    """Per-key limits on concurrent work, each kept only while some of its work runs or waits."""

    def __init__(self, per_flow: int = STEPS_PER_FLOW) -> None:
        self.per_flow = per_flow
        self._flows: dict[str, _Flow] = {}
        self.closed = False

    def close(self) -> None:
        """Work still waiting for its turn is dropped when the turn comes (shutdown)."""
        self.closed = True

    async def run(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work()` once the key's flow has room (unless closed by then); turns go in the order asked for."""
        flow = self._flows.get(key) or self._flows.setdefault(key, _Flow(asyncio.Semaphore(self.per_flow)))
        flow.holders += 1
        try:
            async with flow.turns:
                if not self.closed:
                    await work()
        finally:
            flow.holders -= 1
            if not flow.holders:
                del self._flows[key]

    def waiting(self, key: str) -> int:
        """How much of the key's work runs or waits."""
        flow = self._flows.get(key)
        return flow.holders if flow else 0
