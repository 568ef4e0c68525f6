"""Every error the facade answers, as types, and the one place that maps them to HTTP and Lomas bodies.

Lomas clients tell errors apart by the single key of the JSON body, so each type carries that key;
anything unexpected becomes the constant 500 body and is logged, never shown.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dpkube.engine.errors import EngineError, ExternalLibraryError, InvalidQuery

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "Internal server error. Please contact the administrator of this service."


class ApiException(Exception):
    """An error with its HTTP status and the Lomas key of its body."""

    status_code = 500
    key = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {self.key: self.message}

    def headers(self) -> dict[str, str] | None:
        return None


class InvalidQueryException(ApiException):
    """The request cannot be answered as asked (unknown dataset, budget exceeded, refused payload)."""

    status_code = 400
    key = "InvalidQueryException"


class UnauthorizedAccessException(ApiException):
    """The caller may not do this (no grant on the dataset, someone else's data, not an admin)."""

    status_code = 403
    key = "UnauthorizedAccessException"


class NotAuthenticated(UnauthorizedAccessException):
    """No usable credentials: 401 with a challenge, body in the Lomas 403 style."""

    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="dpkube", Basic realm="dpkube"'}


class ExternalLibraryException(ApiException):
    """The DP library refused or failed on the request; Lomas names the library."""

    status_code = 422
    key = "ExternalLibraryException"

    def __init__(self, message: str, library: str) -> None:
        super().__init__(message)
        self.library = library

    def body(self) -> dict[str, Any]:
        return {self.key: self.message, "library": self.library}


class InternalServerException(ApiException):
    """A fault of the platform: logged with its message, answered with the constant one."""

    def body(self) -> dict[str, Any]:
        return {self.key: INTERNAL_MESSAGE}


class PayloadTooLarge(InvalidQueryException):
    """The body exceeds the configured size limit."""

    status_code = 413


class QueryStillRunning(ApiException):
    """The query did not finish within the wait; it keeps running and can be found by name."""

    status_code = 504
    key = "QueryStillRunningException"

    def __init__(self, namespace: str, name: str, phase: str, waited: float) -> None:
        super().__init__(
            f"Query {name} is still {phase} after {waited:g} s; it keeps running. Find it with "
            f"`kubectl get dpquery {name} -n {namespace}`; once it has succeeded its result is listed "
            "by /get_previous_queries."
        )
        self.namespace, self.name = namespace, name

    def body(self) -> dict[str, Any]:
        return {self.key: self.message, "namespace": self.namespace, "name": self.name}


def from_engine(error: EngineError) -> ApiException:
    """The API error of an engine refusal (raised in-process: costs, dummy data, metadata)."""
    if isinstance(error, ExternalLibraryError):
        return ExternalLibraryException(error.message, error.library.lomas_name)
    if isinstance(error, InvalidQuery):
        return InvalidQueryException(error.message)
    return InternalServerException(error.message)


def error_response(error: ApiException) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


def install_error_handlers(app: FastAPI) -> None:
    """Map every error type to its response; pydantic's 422 keeps FastAPI's own shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiException)
        if isinstance(exc, InternalServerException):
            log.error("internal error", extra={"path": request.url.path, "error": exc.message})
        return error_response(exc)

    async def engine_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EngineError)
        return await api_error(request, from_engine(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path, "error": type(exc).__name__})
        return error_response(InternalServerException(type(exc).__name__))

    app.add_exception_handler(ApiException, api_error)
    app.add_exception_handler(EngineError, engine_error)
    app.add_exception_handler(Exception, unexpected)
