"""Queue: schedules DPQueries (a Dioptra queue): lockable, with a concurrency cap and pod settings."""

from __future__ import annotations

from pydantic import Field

from dpkube.models.base import KubeModel
from dpkube.models.payloads import Library

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class Resources(KubeModel):
    """Requests and limits of the query pods' container (Kubernetes quantities)."""

    requests: dict[str, str] = Field(default_factory=dict, max_length=4)
    """e.g. {cpu: 500m, memory: 1Gi}."""
    limits: dict[str, str] = Field(default_factory=dict, max_length=4)
    """e.g. {cpu: '2', memory: 4Gi}."""


class QueueSpec(KubeModel):
    """How the queue schedules its queries and what their pods get."""

    display_name: str | None = Field(default=None, max_length=253)
    """The name users know (may hold characters a Kubernetes name cannot, e.g. `tensorflow_cpu`)."""
    locked: bool = False
    """A locked queue admits nothing new: its queries wait (they are not rejected) until unlocked."""
    max_concurrent: int | None = Field(default=None, ge=1, le=10_000)
    """Most queries of this queue running at once; none means no cap."""
    warm_pods: int = Field(default=0, ge=0, le=64)
    """Runner pods kept started with the libraries imported, each claiming exactly one query."""
    warm_libraries: list[Library] = Field(default_factory=list, max_length=4)
    """Libraries the warm pods import (and the only ones whose queries they take); empty means all."""
    image: str | None = Field(default=None, max_length=512)
    """Runner image for this queue's pods; none means the operator's default."""
    resources: Resources | None = None
    """Container resources for this queue's pods; none means the operator's defaults."""


class QueueStatus(KubeModel):
    """Counts kept current by the operator."""

    running: int = 0
    """Queries of this queue running now."""
    waiting: int = 0
    """Queries of this queue waiting to be admitted."""
    warm: int = 0
    """Warm runner pods ready to claim a query."""
    admission_serial: int = 0
    """Bumped, conditioned on the queue's resourceVersion, by every admission: a lock or a limit change
    is ordered before or after each admission, never in between."""
