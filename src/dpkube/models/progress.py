"""Where a submitted query stands while it has not ended: what a client shows as live progress.

The facade answers it for a query submitted with `Prefer: respond-async` (RFC 7240) and polled at its
`Location`; the CLI builds the same from a DPQuery it follows through the Kubernetes API.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dpkube.models.dpquery import Phase, phase_of, submitted_at


class QueryProgress(BaseModel):
    """A query's phase, its place in its queue (1 = next) while it waits, and the seconds since submission."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    phase: Phase = Phase.PENDING
    queue_position: int | None = Field(default=None, ge=1)
    message: str | None = None
    """Why it waits (queue full, locked, dependency); never set once the query has read data."""
    elapsed_seconds: float = Field(default=0.0, ge=0)

    @classmethod
    def of(cls, query: dict[str, Any], now: float | None = None) -> QueryProgress:
        """The progress of a stored DPQuery: elapsed from its submission annotation, else its creation."""
        meta, status = query["metadata"], query.get("status") or {}
        phase = phase_of(query) or Phase.PENDING
        waiting = phase in (Phase.PENDING, Phase.ADMITTED)
        return cls(
            name=meta["name"], phase=phase,
            queue_position=status.get("queuePosition") if phase == Phase.PENDING else None,
            message=status.get("message") if waiting else None,
            elapsed_seconds=max(0.0, (time.time() if now is None else now) - submitted_at(meta)),
        )

    def line(self) -> str:
        """One line for a terminal or a log: phase, place in the queue, elapsed time."""
        place = f", #{self.queue_position} in its queue" if self.queue_position else ""
        why = f" ({self.message})" if self.message else ""
        return f"{self.name}: {self.phase.value}{place}{why}, {self.elapsed_seconds:.1f} s"
