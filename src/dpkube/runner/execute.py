"""Turn one RunnerInput into one RunnerOutput: every engine error becomes a typed, data-free error."""

from __future__ import annotations

from dpkube.engine.cost import estimate_cost
from dpkube.engine.datasets import load_frame
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.errors import (
    DatasetUnavailable,
    EngineError,
    ExternalLibraryError,
    InvalidQuery,
    PayloadRejected,
)
from dpkube.engine.release import run_query
from dpkube.models.runner import (
    ErrorKind,
    RunnerCost,
    RunnerError,
    RunnerInput,
    RunnerMode,
    RunnerOutput,
)


def error_kind(error: EngineError) -> ErrorKind:
    """The wire class of an engine error (most specific type first)."""
    if isinstance(error, PayloadRejected):
        return ErrorKind.PAYLOAD_REJECTED
    if isinstance(error, InvalidQuery):
        return ErrorKind.INVALID_QUERY
    if isinstance(error, ExternalLibraryError):
        return ErrorKind.EXTERNAL_LIBRARY
    if isinstance(error, DatasetUnavailable):
        return ErrorKind.DATASET_UNAVAILABLE
    return ErrorKind.INTERNAL


def failure(error: EngineError) -> RunnerOutput:
    """The output of a run the engine refused or could not finish."""
    library = error.library if isinstance(error, ExternalLibraryError) else None
    return RunnerOutput(ok=False, error=RunnerError(kind=error_kind(error), message=error.message, library=library))


def execute(job: RunnerInput) -> RunnerOutput:
    """Price, then run on real or dummy data; engine errors are returned, others propagate."""
    metadata = job.dataset.metadata
    try:
        if job.mode is RunnerMode.COST:
            cost = estimate_cost(job.library, job.payload, metadata)
            return RunnerOutput(ok=True, cost=RunnerCost(epsilon=cost.epsilon, delta=cost.delta))
        if job.mode is RunnerMode.DUMMY:
            frame = dummy_frame(metadata, job.dummy_nb_rows, job.dummy_seed)
        else:
            estimate_cost(job.library, job.payload, metadata)
            frame = load_frame(job.dataset.uri or "", metadata)
        release = run_query(job.library, job.payload, metadata, frame)
    except EngineError as e:
        return failure(e)
    cost = RunnerCost(epsilon=release.cost.epsilon, delta=release.cost.delta)
    return RunnerOutput(ok=True, response=release.response, cost=cost)
