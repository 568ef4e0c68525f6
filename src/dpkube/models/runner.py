"""The per-query runner's input and output: what the operator hands a pod and what it gets back.

One input per process; the output carries either the release and its charge, or a typed error
whose message never quotes data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dpkube.models.base import KubeModel
from dpkube.models.conditions import Reason
from dpkube.models.cost import Cost
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import (
    PAYLOAD_TYPES,
    DiffPrivLibPayload,
    Library,
    OpenDPPayload,
    SmartnoiseSQLPayload,
    SmartnoiseSynthPayload,
)


class RunnerMode(StrEnum):
    """What the runner does with its input."""

    QUERY = "query"
    """Run on the real dataset (a private query: its charge is committed on success)."""
    DUMMY = "dummy"
    """Run on dummy data generated from the metadata (never charged)."""
    COST = "cost"
    """Only price the request (no data is read)."""


class DatasetRef(KubeModel):
    """Where the data is and what it looks like."""

    uri: str | None = Field(default=None, max_length=4_096)
    """demo://NAME, a path, http(s):// or s3://bucket/key; not needed for dummy or cost runs."""
    metadata: Metadata
    """The dataset's metadata (types, bounds, categories)."""


class RunnerInput(KubeModel):
    """One query for one runner process."""

    library: Library
    """The DP library that answers the query."""
    mode: RunnerMode = RunnerMode.QUERY
    """Real data, dummy data or cost only."""
    payload: SmartnoiseSQLPayload | OpenDPPayload | DiffPrivLibPayload | SmartnoiseSynthPayload
    """The library's request (Lomas wire fields)."""
    dataset: DatasetRef
    """The dataset queried."""
    dummy_nb_rows: int = Field(default=100, ge=1, le=100_000)
    """Rows of dummy data (dummy mode)."""
    dummy_seed: int = 42
    """Seed of the dummy data (dummy mode)."""

    @model_validator(mode="before")
    @classmethod
    def _payload_of_its_library(cls, data: Any) -> Any:
        """Validate the payload as the named library's model, not as whichever union member fits."""
        if isinstance(data, dict) and isinstance(data.get("payload"), dict):
            try:
                model = PAYLOAD_TYPES[Library(str(data.get("library")))]
            except ValueError:
                return data
            data = {**data, "payload": model.model_validate(data["payload"])}
        return data

    @model_validator(mode="after")
    def _needs_uri_for_real_data(self) -> RunnerInput:
        if self.mode is RunnerMode.QUERY and not self.dataset.uri:
            raise ValueError("dataset.uri is required in query mode")
        if not isinstance(self.payload, PAYLOAD_TYPES[self.library]):
            raise ValueError(f"payload is not a {self.library} payload")
        return self


class ErrorKind(StrEnum):
    """Why a run failed: the one error taxonomy that crosses the runner -> operator -> facade boundary.

    Each kind carries its process exit code and the condition reason the operator writes; the facade
    maps reasons to HTTP answers in its one error mapper.
    """

    INVALID_QUERY = "invalid_query"
    """The request cannot be answered as asked (Lomas 400)."""
    PAYLOAD_REJECTED = "payload_rejected"
    """The payload is outside the allowlist, limits or versions (400)."""
    EXTERNAL_LIBRARY = "external_library"
    """The DP library failed (Lomas 422; after the data was read, a generic charged failure)."""
    DATASET_UNAVAILABLE = "dataset_unavailable"
    """The data could not be read or does not match its metadata (500, an operator's problem)."""
    BAD_INPUT = "bad_input"
    """The runner's own input is malformed (a bug in whoever built it)."""
    INTERNAL = "internal"
    """Anything else (500)."""

    @property
    def exit_code(self) -> int:
        """The runner process's exit status for this failure class."""
        return _EXIT_CODES[self]

    @property
    def reason(self) -> Reason:
        """The condition reason of a query that ended with this failure, before any data was read."""
        return _REASONS[self]


_EXIT_CODES = {
    ErrorKind.INVALID_QUERY: 2, ErrorKind.PAYLOAD_REJECTED: 2, ErrorKind.BAD_INPUT: 2,
    ErrorKind.EXTERNAL_LIBRARY: 3, ErrorKind.DATASET_UNAVAILABLE: 4, ErrorKind.INTERNAL: 1,
}
_REASONS = {
    ErrorKind.INVALID_QUERY: Reason.INVALID_QUERY, ErrorKind.PAYLOAD_REJECTED: Reason.INVALID_QUERY,
    ErrorKind.EXTERNAL_LIBRARY: Reason.LIBRARY_ERROR, ErrorKind.DATASET_UNAVAILABLE: Reason.FAILED,
    ErrorKind.BAD_INPUT: Reason.FAILED, ErrorKind.INTERNAL: Reason.FAILED,
}


class RunnerError(KubeModel):
    """A failure, described without data."""

    kind: ErrorKind
    """The failure class."""
    message: str = Field(max_length=1_000)
    """A short explanation; after the data was read it goes to the operator's log only."""
    library: Library | None = None
    """The library that failed (external_library only)."""
    exception: str | None = Field(default=None, max_length=200)
    """The class name of the exception, the most a user may learn of a failure on private data."""


class RunnerOutput(KubeModel):
    """The result of one run."""

    ok: bool
    """The run succeeded and `response` holds the release."""
    response: Any = None
    """The Lomas `query_response` (null in cost mode and on failure)."""
    cost: Cost | None = None
    """The charge (also reported in dummy and cost modes, as Lomas does); must equal the reservation."""
    error: RunnerError | None = None
    """Why the run failed."""


class RunnerSettings(BaseSettings):
    """The runner pod's settings: the operator writes the pod's environment from this class, the runner reads it."""

    model_config = SettingsConfigDict(env_prefix="DPKUBE_", extra="ignore")

    claim_url: str = ""
    """The operator's claim endpoint: input, permission to read the data, and the result all go through it."""
    claim_token: str = ""
    """This pod's secret for the claim endpoint (one per pod: a pod can only speak for its own query)."""
    pod_namespace: str = Field(default="", json_schema_extra={"fieldRef": "metadata.namespace"})
    """The pod's namespace (from the downward API)."""
    pod_name: str = Field(default="", json_schema_extra={"fieldRef": "metadata.name"})
    """The pod's name (from the downward API)."""
    libraries: str = ",".join(library.value for library in Library)
    """Libraries a warm pod imports before it claims a query (comma-separated)."""
    wait_timeout: float = 3600.0
    """How long a pod waits for its query, then for the operator to take its result."""
    runner_debug: bool = False
    """Print tracebacks of internal errors (never set in production: tracebacks can quote data)."""

    @classmethod
    def for_pod(cls, claim_url: str, claim_token: str, libraries: str) -> RunnerSettings:
        """A pod's settings, exactly as the operator names them: the operator's own environment never leaks
        into a pod's (a BaseSettings would read it, at about half a millisecond a pod)."""
        return cls.model_construct(claim_url=claim_url, claim_token=claim_token, libraries=libraries)

    def to_env(self) -> list[dict[str, Any]]:
        """The container's `env`: every setting by its variable name, the pod's identity from the downward API."""
        prefix = self.model_config.get("env_prefix", "")
        env: list[dict[str, Any]] = []
        for name, field in type(self).model_fields.items():
            variable = f"{prefix}{name.upper()}"
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if "fieldRef" in extra:
                env.append({"name": variable, "valueFrom": {"fieldRef": {"fieldPath": extra["fieldRef"]}}})
            elif getattr(self, name) != field.default:
                value = getattr(self, name)
                env.append({"name": variable, "value": str(value).lower() if isinstance(value, bool) else str(value)})
        return env
