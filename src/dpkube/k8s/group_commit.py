"""Group commit: requests to change one object that arrive while a write of it is in flight wait, and are
then decided together, in the order they came, and written in one conditioned write.

One write per batch instead of one per request, and no request collides with another of this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")


@dataclass
class GroupCommit(Generic[Request, Outcome]):
    """The requests waiting for one object's next write, and whether a write is in flight."""

    waiting: list[tuple[Request, asyncio.Future[Outcome]]] = field(default_factory=list)
    committing: bool = False

    async def submit(self, request: Request,
                     commit: Callable[[list[tuple[Request, asyncio.Future[Outcome]]]], Awaitable[None]],
                     cut_short: Callable[[asyncio.Future[Outcome]], None]) -> Outcome:
        """`request`'s outcome. The first caller while none is writing commits batches until none wait;
        `commit` settles each future of its batch. If that caller is cancelled, every request it left
        unsettled gets `cut_short` (none of them was written), so no caller waits for ever."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.waiting.append((request, done))
        if not self.committing:
            self.committing = True
            batch: list[tuple[Request, asyncio.Future[Outcome]]] = []
            try:
                while self.waiting:
                    batch, self.waiting = self.waiting, []
                    await commit(batch)
            finally:
                self.committing = False
                for _, left in [*batch, *self.waiting]:
                    if not left.done():
                        cut_short(left)
                self.waiting = []
        return await done
