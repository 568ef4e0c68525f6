"""The per-query runner's input and output: what the operator hands a pod and what it gets back.

One input per process; the output carries either the release and its charge, or a typed error
whose message never quotes data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from dpkube.models.base import KubeModel
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
                model = PAYLOAD_TYPES[Library(data.get("library"))]
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
    """Why a run failed; the facade maps each kind to one HTTP status."""

    INVALID_QUERY = "invalid_query"
    """The request cannot be answered as asked (Lomas 400)."""
    PAYLOAD_REJECTED = "payload_rejected"
    """The payload is outside the allowlist, limits or versions (400)."""
    EXTERNAL_LIBRARY = "external_library"
    """The DP library failed (Lomas 422)."""
    DATASET_UNAVAILABLE = "dataset_unavailable"
    """The data could not be read or does not match its metadata (500, an operator's problem)."""
    BAD_INPUT = "bad_input"
    """The runner's own input is malformed (a bug in whoever built it)."""
    INTERNAL = "internal"
    """Anything else (500)."""


class RunnerError(KubeModel):
    """A failure, described without data."""

    kind: ErrorKind
    """The failure class."""
    message: str = Field(max_length=1_000)
    """A short, data-free explanation."""
    library: Library | None = None
    """The library that failed (external_library only)."""


class RunnerCost(KubeModel):
    """The charge of the query (equal to the admission estimate)."""

    epsilon: float
    """Epsilon charged."""
    delta: float
    """Delta charged."""


class RunnerOutput(KubeModel):
    """The result of one run."""

    ok: bool
    """The run succeeded and `response` holds the release."""
    response: Any = None
    """The Lomas `query_response` (null in cost mode and on failure)."""
    cost: RunnerCost | None = None
    """The charge (also reported in dummy and cost modes, as Lomas does)."""
    error: RunnerError | None = None
    """Why the run failed."""
