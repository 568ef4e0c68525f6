"""Turn one RunnerInput into one RunnerOutput: every engine error becomes a typed error.

Everything the engine can check from the request and the public metadata is checked before the data
is read (and may be told to the user). `before_read` is called just before the first byte of private
data is read: in a pod it asks the operator's leave, which the operator records first, so from then
on the query is charged whatever happens and the error texts below go to the operator's log only.
"""

from __future__ import annotations

from collections.abc import Callable

from dpkube.engine.cost import estimate_cost
from dpkube.engine.datasets import load_frame
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.errors import EngineError, ExternalLibraryError
from dpkube.engine.release import run_query
from dpkube.models.runner import RunnerError, RunnerInput, RunnerMode, RunnerOutput


def failure(error: BaseException) -> RunnerOutput:
    """The output of a run the engine refused or could not finish (the cause's class name kept apart)."""
    cause = error.__cause__ or error.__context__
    exception = type(cause).__name__ if cause is not None else type(error).__name__
    if isinstance(error, EngineError):
        library = error.library if isinstance(error, ExternalLibraryError) else None
        return RunnerOutput(ok=False, error=RunnerError(kind=error.kind, message=error.message, library=library,
                                                        exception=exception))
    return RunnerOutput(ok=False, error=RunnerError(kind="internal", message=f"internal error ({exception})",
                                                    exception=exception))


def execute(job: RunnerInput, before_read: Callable[[], None] = lambda: None) -> RunnerOutput:
    """Price, then run on real or dummy data; engine errors are returned, others propagate."""
    metadata = job.dataset.metadata
    try:
        if job.mode is RunnerMode.COST:
            return RunnerOutput(ok=True, cost=estimate_cost(job.library, job.payload, metadata))
        if job.mode is RunnerMode.DUMMY:
            frame = dummy_frame(metadata, job.dummy_nb_rows, job.dummy_seed)
        else:
            estimate_cost(job.library, job.payload, metadata)
            before_read()
            frame = load_frame(job.dataset.uri or "", metadata)
        release = run_query(job.library, job.payload, metadata, frame)
    except EngineError as e:
        return failure(e)
    return RunnerOutput(ok=True, response=release.response, cost=release.cost)
