"""The engine's error types: raised where a fault is found, mapped to HTTP codes by the facade alone.

Messages never quote data: they name fields, parameters and limits, so they may be shown to the
querying user and written to CRD status.
"""

from __future__ import annotations

from dpkube.models.payloads import Library

MAX_MESSAGE_CHARS = 1_000


def _short(message: str) -> str:
    """Library messages can be long (tracebacks, ASTs); keep status fields and logs small."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 3] + "..."


class EngineError(Exception):
    """Any failure the engine reports to a user."""

    def __init__(self, message: str) -> None:
        self.message = _short(message)
        super().__init__(self.message)


class InvalidQuery(EngineError):
    """The request cannot be answered as asked (Lomas' InvalidQueryException, HTTP 400)."""


class PayloadRejected(InvalidQuery):
    """The payload uses something outside the allowlist, a size limit or a supported version."""


class DatasetUnavailable(EngineError):
    """The dataset could not be read or does not match its metadata (an operator's problem)."""


class ExternalLibraryError(EngineError):
    """The DP library failed on this request (Lomas' ExternalLibraryException, HTTP 422)."""

    def __init__(self, library: Library, message: str) -> None:
        super().__init__(message)
        self.library = library
