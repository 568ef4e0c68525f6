"""Every error the facade answers, as types, and the one place that maps them to HTTP and Lomas bodies.

Lomas clients tell errors apart by the single key of the JSON body, so each type carries that key;
anything unexpected becomes the constant 500 body and is logged, never shown.
"""

from __future__ import annotations

import html
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dpkube.api.ui.pages import SECURITY_HEADERS
from dpkube.engine.errors import EngineError, ExternalLibraryError, InvalidQuery
from dpkube.engine.pool import PoolBusy

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


class UnknownQuery(InvalidQueryException):
    """No query of the caller's by that name (another user's is not theirs to see)."""

    status_code = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"Query {name} does not exist.")


class UnauthorizedAccessException(ApiException):
    """The caller may not do this (no grant on the dataset, someone else's data, not an admin)."""

    status_code = 403
    key = "UnauthorizedAccessException"


class NotAuthenticated(UnauthorizedAccessException):
    """No usable credentials: 401 with a challenge, body in the Lomas 403 style."""

    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="dpkube", Basic realm="dpkube"'}


class FormRefused(UnauthorizedAccessException):
    """A dashboard form without its CSRF token, or sent from another origin: 403, and nothing is done."""


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


class TooManyRequests(InvalidQueryException):
    """A per-user limit (requests per second, queries in flight, requests waiting): 429 with Retry-After."""

    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"{message} Retry after {self.retry_after} s.")

    def body(self) -> dict[str, Any]:
        return {self.key: f"Too many requests: {self.message}"}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceBusy(ApiException):
    """Every worker is busy for every user: 503 with Retry-After (nobody's fault, nothing was done)."""

    status_code = 503
    retry_after = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class QueryStillRunning(ApiException):
    """The query did not finish within the wait; it keeps running and can be found by name."""

    status_code = 504
    key = "QueryStillRunningException"

    def __init__(self, namespace: str, name: str, phase: str, waited: float) -> None:
        super().__init__(
            f"Query {name} is still {phase} after {waited:g} s; it keeps running. Follow it at "
            f"GET /queries/{name}, which answers its result once it has ended, or with "
            f"`kubectl get dpquery {name} -n {namespace}`."
        )
        self.namespace, self.name = namespace, name

    def body(self) -> dict[str, Any]:
        return {self.key: self.message, "namespace": self.namespace, "name": self.name}


DIOPTRA_PREFIX = "/api/"
"""Routes under this prefix speak Dioptra: every error body is `{"message": ...}`."""
DIOPTRA_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}


class DioptraError(ApiException):
    """A Dioptra v0 error: its clients read `message` and test its words (`"Not Found" in r["message"]`)."""

    status_code = 400

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"message": self.message} | ({"detail": self.detail} if self.detail else {})


class DioptraBadRequest(DioptraError):
    """A refused form, body or archive (the detail says what, the message is Dioptra's text)."""


class DioptraForbidden(DioptraError):
    """Locked queue, or an admin-only route called by someone else."""

    status_code = 403


class DioptraNotFound(DioptraError):
    """No such experiment, queue, job or task plugin package."""

    status_code = 404


class DioptraTooLarge(DioptraError):
    """An uploaded archive over its limit (it is kept in a ConfigMap, capped near 1 MiB)."""

    status_code = 413


class DioptraUnavailable(DioptraError):
    """The cluster could not keep what was uploaded."""

    status_code = 503


def dioptra_body(status_code: int, message: str) -> dict[str, Any]:
    """Any error on a Dioptra route in Dioptra's words: `<HTTP title> - <what>`."""
    return {"message": f"{DIOPTRA_TITLES.get(status_code, 'Error')} - {message}"}


def _is_dioptra(request: Request) -> bool:
    return request.url.path.startswith(DIOPTRA_PREFIX)


UI_PREFIX = "/ui"
UI_LOGIN = f"{UI_PREFIX}/login"
SESSION_COOKIE = "dpkube_session"
"""The web dashboard's cookie: the API token the user signed in with (HttpOnly, SameSite=Strict, path /ui)."""


def _is_ui(request: Request) -> bool:
    return request.url.path == UI_PREFIX or request.url.path.startswith(f"{UI_PREFIX}/")


def page_error(request: Request, error: ApiException) -> Response:
    """An error on a dashboard page: a page without a usable session goes to the sign-in form; any other
    error is a small HTML page with its status."""
    if isinstance(error, NotAuthenticated) and request.method == "GET":
        response: Response = RedirectResponse(UI_LOGIN, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=UI_PREFIX)
        return response
    message = INTERNAL_MESSAGE if isinstance(error, InternalServerException) else error.message
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>dpkube: {error.status_code}</title>"
            f"<link rel=stylesheet href={UI_PREFIX}/static/dashboard.css></head><body><main class=error>"
            f"<h1>{error.status_code}</h1><p>{html.escape(message)}</p><p><a href={UI_PREFIX}>Back</a></p>"
            "</main></body></html>")
    return HTMLResponse(body, status_code=error.status_code, headers=SECURITY_HEADERS)


def from_engine(error: EngineError) -> ApiException:
    """The API error of an engine refusal (raised in-process: costs, dummy data, metadata)."""
    if isinstance(error, ExternalLibraryError):
        return ExternalLibraryException(error.message, error.library.lomas_name)
    if isinstance(error, PoolBusy):
        return ServiceBusy(f"The service is busy: {error.message}. Retry after {ServiceBusy.retry_after} s.")
    if isinstance(error, InvalidQuery):
        return InvalidQueryException(error.message)
    return InternalServerException(error.message)


def error_response(error: ApiException) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


def install_error_handlers(app: FastAPI) -> None:
    """Map every error type to its response; outside Dioptra routes pydantic's 422 keeps FastAPI's own shape."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiException)
        if isinstance(exc, InternalServerException):
            log.error("internal error", extra={"path": request.url.path, "error": exc.message})
        if _is_ui(request):
            return page_error(request, exc)
            if _is_dioptra(request):
                return JSONResponse(dioptra_body(500, INTERNAL_MESSAGE), status_code=500)
        if _is_dioptra(request) and not isinstance(exc, DioptraError):
            return JSONResponse(dioptra_body(exc.status_code, exc.message), status_code=exc.status_code,
                                headers=exc.headers())
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_dioptra(request):
            return JSONResponse(dioptra_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                                headers=exc.headers)
        return await http_exception_handler(request, exc)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if _is_dioptra(request):
            fields: dict[str, list[str]] = {}
            for error in exc.errors():
                fields.setdefault(".".join(str(p) for p in error["loc"][1:]) or "body", []).append(error["msg"])
            return JSONResponse({**dioptra_body(400, "The request body is invalid."), "schema_errors": fields},
                                status_code=400)
        return await request_validation_exception_handler(request, exc)

    async def engine_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EngineError)
        return await api_error(request, from_engine(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path, "error": type(exc).__name__})
        if _is_dioptra(request):
            return JSONResponse(dioptra_body(500, INTERNAL_MESSAGE), status_code=500)
        return error_response(InternalServerException(type(exc).__name__))

    app.add_exception_handler(ApiException, api_error)
    app.add_exception_handler(EngineError, engine_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)
