"""The errors a Lomas server answers, as the exception types its clients raise.

A Lomas body has one key naming the error class, so callers can catch the same types against
Lomas or dpkube; statuses and bodies that are not Lomas errors fall back on the status code.
"""

from __future__ import annotations

from typing import Any


class LomasClientError(Exception):
    """Base of every error the client raises for an answer of the server."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class InvalidQueryException(LomasClientError):
    """400 (and pydantic's 422): the request cannot be answered as asked (unknown dataset, budget, bad body)."""


class UnauthorizedAccessException(LomasClientError):
    """401/403: unknown user, no access to the dataset, or a query already running."""


class ExternalLibraryException(LomasClientError):
    """422: the DP library refused or failed; `library` names it (smartnoise_sql, opendp, ...)."""

    def __init__(self, message: str, library: str | None, status_code: int | None = 422) -> None:
        super().__init__(message, status_code)
        self.library = library


class InternalServerException(LomasClientError):
    """500 and other unexpected answers: a fault of the server, its message kept from the caller."""


class QueryStillRunningException(LomasClientError):
    """The query did not end within the wait (504, or the client's own timeout); it may still finish."""

    def __init__(self, message: str, name: str | None = None, namespace: str | None = None,
                 status_code: int | None = 504) -> None:
        super().__init__(message, status_code)
        self.name = name
        self.namespace = namespace


def error_from_response(status_code: int, body: Any) -> LomasClientError:
    """The exception of one non-2xx answer, from its Lomas key first, then from its status."""
    if isinstance(body, dict):
        if "ExternalLibraryException" in body:
            return ExternalLibraryException(str(body["ExternalLibraryException"]), body.get("library"), status_code)
        if "QueryStillRunningException" in body:
            return QueryStillRunningException(str(body["QueryStillRunningException"]), body.get("name"),
                                              body.get("namespace"), status_code)
        for key, kind in (("InvalidQueryException", InvalidQueryException),
                          ("UnauthorizedAccessException", UnauthorizedAccessException),
                          ("InternalServerException", InternalServerException)):
            if key in body:
                return kind(str(body[key]), status_code)
    message = _describe(body)
    if status_code in (401, 403):
        return UnauthorizedAccessException(message, status_code)
    if status_code in (400, 404, 413, 422):
        return InvalidQueryException(message, status_code)
    if status_code == 504:
        return QueryStillRunningException(message, status_code=status_code)
    return InternalServerException(message, status_code)


def _describe(body: Any) -> str:
    """A one-line message for a body that is not a Lomas error (FastAPI's validation details, text)."""
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        parts = []
        for item in body["detail"]:
            where = ".".join(str(p) for p in item.get("loc", []))
            parts.append(f"{where}: {item.get('msg', '')}")
        return "; ".join(parts)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)
