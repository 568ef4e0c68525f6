"""Each error type answers one HTTP status with the Lomas body its clients match on."""

from __future__ import annotations

import pytest

from dpkube.api.errors import (
    INTERNAL_MESSAGE,
    ExternalLibraryException,
    InternalServerException,
    InvalidQueryException,
    NotAuthenticated,
    PayloadTooLarge,
    QueryStillRunning,
    TooManyRequests,
    UnauthorizedAccessException,
    from_engine,
)
from dpkube.engine.errors import DatasetUnavailable, ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.engine.pool import JobCrashed, JobTimedOut, PoolBusy, WorkerFailed
from dpkube.models.payloads import Library


@pytest.mark.parametrize("error,status,body", [
    (InvalidQueryException("m"), 400, {"InvalidQueryException": "m"}),
    (UnauthorizedAccessException("m"), 403, {"UnauthorizedAccessException": "m"}),
    (NotAuthenticated("m"), 401, {"UnauthorizedAccessException": "m"}),
    (ExternalLibraryException("m", "opendp"), 422, {"ExternalLibraryException": "m", "library": "opendp"}),
    (InternalServerException("secret detail"), 500, {"InternalServerException": INTERNAL_MESSAGE}),
    (PayloadTooLarge("m"), 413, {"InvalidQueryException": "m"}),
])
def test_error_types_map_to_status_and_lomas_body(error, status, body) -> None:
    assert (error.status_code, error.body()) == (status, body)


def test_the_500_body_never_shows_the_real_message() -> None:
    assert "secret" not in str(InternalServerException("secret detail").body())


def test_a_401_carries_a_challenge() -> None:
    assert "Bearer" in NotAuthenticated("m").headers()["WWW-Authenticate"]


def test_a_query_still_running_says_how_to_find_it() -> None:
    error = QueryStillRunning("dpkube", "lomas-query-1", "Running", 300)
    assert error.status_code == 504
    assert error.body()["name"] == "lomas-query-1"
    assert "kubectl get dpquery lomas-query-1 -n dpkube" in error.body()["QueryStillRunningException"]
    assert "GET /queries/lomas-query-1" in error.body()["QueryStillRunningException"]


@pytest.mark.parametrize("engine,status", [
    (InvalidQuery("m"), 400),
    (PayloadRejected("m"), 400),
    (ExternalLibraryError(Library.SMARTNOISE_SQL, "m"), 422),
    (DatasetUnavailable("m"), 500),
    (JobTimedOut(5.0), 400),
    (JobCrashed(-9), 400),
    (PoolBusy("m"), 503),
    (WorkerFailed("KeyError"), 500),
])
def test_engine_errors_map_like_lomas(engine, status) -> None:
    assert from_engine(engine).status_code == status


def test_an_external_library_error_names_the_library_as_lomas_does() -> None:
    error = from_engine(ExternalLibraryError(Library.SMARTNOISE_SYNTH, "m"))
    assert error.body() == {"ExternalLibraryException": "m", "library": "smartnoise_synth"}


def test_too_many_requests_is_429_in_the_lomas_shape_with_retry_after() -> None:
    error = TooManyRequests("more than 20 requests per second.", 0.3)
    assert (error.status_code, error.headers()) == (429, {"Retry-After": "1"})
    assert error.body() == {"InvalidQueryException": "Too many requests: more than 20 requests per second. "
                                                      "Retry after 1 s."}


def test_a_retry_after_is_whole_seconds_rounded_up() -> None:
    assert TooManyRequests("m", 2.1).headers() == {"Retry-After": "3"}


def test_a_busy_pool_is_503_with_retry_after_and_no_internal_details() -> None:
    error = from_engine(PoolBusy("all 2 workers are busy and 32 requests wait"))
    assert (error.status_code, error.headers()) == (503, {"Retry-After": "1"})
    assert "busy" in error.body()["InternalServerException"]


def test_a_job_over_its_time_limit_is_a_400_naming_the_limit() -> None:
    assert from_engine(JobTimedOut(5.0)).body() == {
        "InvalidQueryException": "the request took more than 5 s to check, the limit; simplify it"}
