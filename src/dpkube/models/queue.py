"""Queue: schedules DPQueries (a Dioptra queue): lockable, with a concurrency cap and pod settings."""

from __future__ import annotations

from pydantic import Field

from dpkube.models.base import KubeModel
from dpkube.models.payloads import CORE_LIBRARIES, Library

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
    """Runner pods kept started with the libraries imported, each claiming exactly one query: the pool's
    floor, kept even when the queue is idle."""
    warm_pods_max: int | None = Field(default=None, ge=0, le=256)
    """The pool's ceiling: while queries claim warm pods, the pool grows by as many as were claimed in the
    last minute, up to this; idle, it shrinks back to `warmPods`. None keeps the pool at `warmPods`."""
    warm_libraries: list[Library] = Field(default_factory=list, max_length=4)
    """Libraries the warm pods import (and the only ones whose queries they take); empty means all."""
    image: str | None = Field(default=None, max_length=512)
    """Runner image for this queue's pods; none means the operator's default."""
    resources: Resources | None = None
    """Container resources for this queue's pods; none means the operator's defaults."""


DEFAULT_QUEUE = "default"
"""The Queue that `make dev` and the Helm chart create, and through which the facade runs its Lomas queries
(those of the libraries it warms)."""


def default_queue_spec() -> QueueSpec:
    """Warm by default and sized to demand: two idle runners, up to sixteen while queries come in. They warm
    the core libraries only: no torch in each runner, and the core image can serve them."""
    return QueueSpec(display_name=DEFAULT_QUEUE, max_concurrent=16, warm_pods=2, warm_pods_max=16,
                     warm_libraries=list(CORE_LIBRARIES))


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
