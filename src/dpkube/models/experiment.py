"""Experiment: a named group of DPQueries (a Dioptra experiment), with live counts of its queries."""

from __future__ import annotations

from pydantic import Field

from dpkube.models.base import KubeModel
from dpkube.models.cost import Cost


class ExperimentSpec(KubeModel):
    """An experiment as its users name and describe it."""

    display_name: str | None = Field(default=None, max_length=253)
    """The name users know (may hold characters a Kubernetes name cannot, e.g. `mnist_squeeze`)."""
    description: str = Field(default="", max_length=4096)
    """What the experiment is for."""
    locked: bool = False
    """A locked experiment accepts no new queries: they are Rejected with reason ExperimentLocked."""
    budget: Cost | None = None
    """What the experiment's queries may spend per user and dataset, on top of each user's grant (none: no cap).
    A query that would exceed it is Rejected with reason ExperimentBudgetExceeded."""


class PhaseCounts(KubeModel):
    """How many of the experiment's queries are in each phase."""

    pending: int = 0
    """Queries pending."""
    admitted: int = 0
    """Queries admitted."""
    running: int = 0
    """Queries running."""
    succeeded: int = 0
    """Queries succeeded."""
    failed: int = 0
    """Queries failed."""
    rejected: int = 0
    """Queries rejected."""
    timed_out: int = 0
    """Queries timed out."""
    cancelled: int = 0
    """Queries cancelled."""


class ExperimentStatus(KubeModel):
    """Counts kept current by the operator."""

    queries: PhaseCounts = Field(default_factory=PhaseCounts)
    """The experiment's queries by phase."""
    total: int = 0
    """All queries of the experiment."""
