"""DPQuery: one differentially private query, its payload, and the record of what it cost and released.

The spec is immutable once created (a query is admitted against the cost of the spec it had), and
exactly one payload, the one of its library, is set; the API server enforces both with CEL rules
generated from the same mapping the Python validator uses.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from dpkube.models.base import KubeModel
from dpkube.models.conditions import Condition, ConditionType
from dpkube.models.cost import Cost
from dpkube.models.payloads import (
    DiffPrivLibPayload,
    Library,
    OpenDPPayload,
    Payload,
    SmartnoiseSQLPayload,
    SmartnoiseSynthPayload,
)

RELEASE_FINALIZER = "dpkube.io/release-budget"
"""Kept on a query that may hold a reservation or a pod, until its ending has settled both."""
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_DUMMY_ROWS = 100_000

PAYLOAD_FIELD: dict[Library, str] = {
    Library.SMARTNOISE_SQL: "smartnoise_sql",
    Library.OPENDP: "opendp",
    Library.DIFFPRIVLIB: "diffprivlib",
    Library.SMARTNOISE_SYNTH: "smartnoise_synth",
}


class Mode(StrEnum):
    """What to do with the query."""

    QUERY = "query"
    """Run on the real data and charge the budget."""
    DUMMY = "dummy"
    """Run on dummy data generated from the metadata; never charges."""
    COST = "cost"
    """Only compute the cost; no pod, never charges."""


class Phase(StrEnum):
    """Where a query is in its life; the last five are terminal."""

    PENDING = "Pending"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REJECTED = "Rejected"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset(
    {Phase.SUCCEEDED, Phase.FAILED, Phase.REJECTED, Phase.TIMED_OUT, Phase.CANCELLED}
)


SUBMITTED_AT_ANNOTATION = "dpkube.io/submitted-at"
"""Unix time of submission, set by the facade: the archive record's timestamp and order, where elapsed time
starts."""


def submitted_at(meta: dict[str, Any]) -> float:
    """Unix time the query was submitted (the facade's annotation), else created (the API server's stamp)."""
    try:
        return float((meta.get("annotations") or {})[SUBMITTED_AT_ANNOTATION])
    except (KeyError, ValueError):
        return dt.datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00")).timestamp()


def phase_of(query: dict[str, Any]) -> Phase | None:
    """A stored DPQuery's phase without parsing its whole status (None: not looked at yet)."""
    raw = (query.get("status") or {}).get("phase")
    return Phase(raw) if raw else None


def admission_reason(query: dict[str, Any]) -> str | None:
    """A stored DPQuery's reason on its Admitted condition (why it waits, or was admitted or refused), without
    parsing its whole status."""
    conditions = (query.get("status") or {}).get("conditions") or []
    return next((c.get("reason") for c in conditions if c.get("type") == ConditionType.ADMITTED), None)


class DummySpec(KubeModel):
    """How to build the dummy dataset of a dummy-mode query."""

    rows: int = Field(default=100, gt=0, le=MAX_DUMMY_ROWS)
    """Number of dummy rows."""
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    """Seed of the generator; the same seed gives the same rows."""


def _payload_cel_rules() -> list[JsonValue]:
    fields = [to_camel(f) for f in PAYLOAD_FIELD.values()]
    exactly_one = " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " == 1"
    rules: list[JsonValue] = [
        {"rule": exactly_one, "message": "exactly one payload must be set", "fieldPath": ".library"}]
    for library, field in zip(PAYLOAD_FIELD, fields, strict=True):
        rules.append({
            "rule": f"self.library != '{library.value}' || has(self.{field})",
            "message": f"library {library.value} needs the {field} payload",
            "fieldPath": f".{field}",
        })
    rules.append({"rule": "self == oldSelf", "message": "spec is immutable"})
    return rules


class DPQuerySpec(KubeModel):
    """What the user asks: one query on one dataset with one library."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": _payload_cel_rules()}}

    user: str = Field(min_length=1, max_length=253)
    """Whose budget pays; must be the identity that creates the object (an admission policy checks)."""
    dataset: str = Field(min_length=1, max_length=253)
    """Name of the dataset (as users know it, e.g. PENGUIN)."""
    library: Library
    """The DP library that answers the query."""
    mode: Mode = Mode.QUERY
    """query (real data, charged), dummy (dummy data, free) or cost (estimate only, free)."""
    experiment: str | None = Field(default=None, max_length=63, pattern=NAME_PATTERN)
    """The Experiment this query belongs to, if any."""
    queue: str | None = Field(default=None, max_length=63, pattern=NAME_PATTERN)
    """The Queue that schedules this query; none means it runs as soon as it is admitted."""
    smartnoise_sql: SmartnoiseSQLPayload | None = None
    """Payload of a smartnoise-sql query."""
    opendp: OpenDPPayload | None = None
    """Payload of an OpenDP query."""
    diffprivlib: DiffPrivLibPayload | None = None
    """Payload of a diffprivlib query."""
    smartnoise_synth: SmartnoiseSynthPayload | None = None
    """Payload of a smartnoise-synth query."""
    dummy: DummySpec | None = None
    """Dummy dataset parameters (dummy mode only; defaults 100 rows, seed 42)."""
    depends_on: list[str] = Field(default_factory=list, max_length=16)
    """DPQueries (same namespace) that must have Succeeded before this one starts."""
    timeout: str | None = Field(default=None, max_length=32, pattern=DURATION_PATTERN)
    """Longest run time, e.g. 30s, 5m, 24h; past it the query ends TimedOut."""
    plugins: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(default_factory=list, max_length=8)
    """Custom task plugin packages mounted read-only into the query's pod (never imported by the runner)."""

    @model_validator(mode="after")
    def _exactly_one_payload_of_its_library(self) -> DPQuerySpec:
        present = [lib for lib, field in PAYLOAD_FIELD.items() if getattr(self, field) is not None]
        if present != [self.library]:
            raise ValueError(
                f"exactly one payload must be set and it must be the {self.library.value} payload "
                f"(set: {', '.join(p.value for p in present) or 'none'})"
            )
        return self

    @property
    def payload(self) -> Payload:
        """The one payload this query carries."""
        value: Payload | None = getattr(self, PAYLOAD_FIELD[self.library])
        assert value is not None  # guaranteed by the validator
        return value


class ResultRef(KubeModel):
    """Where a result too large for the status is kept."""

    config_map: str
    """Name of the ConfigMap (in the query pods' namespace) holding the result."""
    key: str = "result.json"
    """Key of the result in that ConfigMap."""
    chunks: int = Field(default=1, ge=1, le=64)
    """How many ConfigMaps hold it: the first, then NAME-1, NAME-2, ... in order."""


class DPQueryStatus(KubeModel):
    """What happened: phase, conditions, the cost charged and the result released."""

    phase: Phase = Phase.PENDING
    """Pending, Admitted, Running, Succeeded, Failed, Rejected, TimedOut or Cancelled."""
    conditions: list[Condition] = Field(default_factory=list)
    """Detailed state, Kubernetes conventions."""
    cost: Cost | None = None
    """The cost computed at admission by the library's own accounting (reserved while in flight)."""
    spent: Cost | None = None
    """What was charged to the budget: set once, when a result is released or when a run that read the
    private data ends any other way."""
    metadata_digest: str | None = Field(default=None, max_length=64)
    """sha256 of the dataset metadata that priced the query at admission; the pod runs on that same snapshot."""
    data_read_at: dt.datetime | None = None
    """When the runner was allowed to read the private data (from then on the query is charged)."""
    result: Any | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """The released result (the library's response), when it is small enough to keep here."""
    result_ref: ResultRef | None = None
    """Where the released result is kept when it is too large for the status."""
    pod_name: str | None = None
    """The pod that runs (or ran) the query."""
    queue_position: int | None = None
    """Position among the queue's waiting queries (1 = next), refreshed every few seconds (kueue#1657)."""
    queue_serial: int | None = None
    """The queue's admission serial this query's admission took: queries of a queue are admitted in this order."""
    admitted_at: dt.datetime | None = None
    """When the cost was reserved."""
    start_time: dt.datetime | None = None
    """When the pod started running the query."""
    completion_time: dt.datetime | None = None
    """When the query reached a terminal phase."""
    message: str | None = Field(default=None, max_length=4096)
    """A short human-readable summary of the current phase."""
    observed_generation: int | None = None
    """The spec generation last acted on."""
