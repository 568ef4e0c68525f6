"""Status conditions as Kubernetes conventions define them, and every reason dpkube sets, in one place."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import Field

from dpkube.models.base import KubeModel


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """The aspects of a DPQuery's state that its conditions describe."""

    ADMITTED = "Admitted"
    """The cost is reserved (True), or why the query waits or was refused (False)."""
    POD_CREATED = "PodCreated"
    """A pod runs the query (its name is in status.podName)."""
    DATA_READ = "DataRead"
    """The runner was allowed to read the private data: from here on the query is charged whatever happens."""
    CHARGED = "Charged"
    """The cost moved from reserved to spent."""
    COMPLETE = "Complete"
    """The query reached a terminal phase; the reason says which ending."""


class Reason(StrEnum):
    """CamelCase reasons for conditions and Events; tests and users match on these."""

    ADMITTED = "Admitted"
    WAITING_FOR_QUEUE = "WaitingForQueue"
    QUEUE_NOT_FOUND = "QueueNotFound"
    QUEUE_LOCKED = "QueueLocked"
    QUEUE_FULL = "QueueFull"
    WAITING_FOR_DEPENDENCY = "WaitingForDependency"
    GRANT_FULL = "GrantFull"
    """So many of the user's queries hold the grant at once that its ConfigMap has no room for one more."""
    DEPENDENCY_FAILED = "DependencyFailed"
    INSUFFICIENT_BUDGET = "InsufficientBudget"
    EXPERIMENT_BUDGET_EXCEEDED = "ExperimentBudgetExceeded"
    """The query does not fit what remains of its experiment's cap for its user and dataset."""
    USER_NOT_ALLOWED = "UserNotAllowed"
    NO_BUDGET_GRANT = "NoBudgetGrant"
    DATASET_NOT_FOUND = "DatasetNotFound"
    EXPERIMENT_LOCKED = "ExperimentLocked"
    EXPERIMENT_NOT_FOUND = "ExperimentNotFound"
    INVALID_GRANT = "InvalidGrant"
    NOT_EXPRESSIBLE_IN_ZCDP = "NotExpressibleInZCDP"
    """The grant is accounted in zCDP and the query has no rho cost (e.g. a Laplace mechanism)."""
    BUDGET_ERROR = "BudgetError"
    INVALID_QUERY = "InvalidQuery"
    LIBRARY_ERROR = "LibraryError"
    """The library refused the query before any data was read (its message names the cause)."""
    FAILED_ON_PRIVATE_DATA = "FailedOnPrivateData"
    """The run failed after the data was read: charged, and the user sees a generic message."""
    COST_MISMATCH = "CostMismatch"
    """The runner reported a cost other than the one reserved: nothing is released."""
    DATA_READ = "DataRead"
    POD_CREATED = "PodCreated"
    POD_RUNNING = "PodRunning"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"
    CHARGED = "Charged"
    REFUNDED = "Refunded"


class Condition(KubeModel):
    """One aspect of an object's state, as `kubectl describe` shows it."""

    type: str = Field(max_length=316)
    """The aspect this condition describes (e.g. Admitted, Charged, Complete)."""
    status: ConditionStatus
    """Whether the aspect holds: True, False or Unknown."""
    reason: str = Field(max_length=1024)
    """A CamelCase machine-readable cause."""
    message: str = Field(default="", max_length=32768)
    """A human-readable explanation."""
    last_transition_time: dt.datetime
    """When the status last changed."""
    observed_generation: int | None = None
    """The spec generation this condition was computed from."""
