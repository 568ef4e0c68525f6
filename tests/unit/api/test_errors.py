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
    UnauthorizedAccessException,
    from_engine,
)
from dpkube.engine.errors import DatasetUnavailable, ExternalLibraryError, InvalidQuery, PayloadRejected
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


@pytest.mark.parametrize("engine,status", [
    (InvalidQuery("m"), 400),
    (PayloadRejected("m"), 400),
    (ExternalLibraryError(Library.SMARTNOISE_SQL, "m"), 422),
    (DatasetUnavailable("m"), 500),
])
def test_engine_errors_map_like_lomas(engine, status) -> None:
    assert from_engine(engine).status_code == status


def test_an_external_library_error_names_the_library_as_lomas_does() -> None:
    error = from_engine(ExternalLibraryError(Library.SMARTNOISE_SYNTH, "m"))
    assert error.body() == {"ExternalLibraryException": "m", "library": "smartnoise_synth"}
