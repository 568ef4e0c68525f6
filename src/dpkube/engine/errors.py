"""The engine's error types: raised where a fault is found, mapped to HTTP codes by the facade alone.

Refusals raised before the data is read (InvalidQuery, PayloadRejected, from a library's `cost`)
name fields, parameters and limits only, so they may be shown to the querying user and written to
CRD status. An ExternalLibraryError raised after the data is read (from `run`) may carry the
library's own text, which can quote data: it belongs in the operator's log, not in a user's view.
"""

from __future__ import annotations

from dpkube.models.payloads import Library
from dpkube.models.runner import ErrorKind

MAX_MESSAGE_CHARS = 1_000


def _short(message: str) -> str:
    """Library messages can be long (tracebacks, ASTs); keep status fields and logs small."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 3] + "..."


class EngineError(Exception):
    """Any failure the engine reports; `kind` is its class in the one taxonomy that crosses processes."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str) -> None:
        self.message = _short(message)
        super().__init__(self.message)


class InvalidQuery(EngineError):
    """The request cannot be answered as asked (Lomas' InvalidQueryException, HTTP 400)."""

    kind = ErrorKind.INVALID_QUERY


class PayloadRejected(InvalidQuery):
    """The payload uses something outside the allowlist, a size limit or a supported version."""

    kind = ErrorKind.PAYLOAD_REJECTED


class DatasetUnavailable(EngineError):
    """The dataset could not be read or does not match its metadata (an operator's problem)."""

    kind = ErrorKind.DATASET_UNAVAILABLE


class ExternalLibraryError(EngineError):
    """The DP library failed on this request (Lomas' ExternalLibraryException, HTTP 422).

    Raised by `cost` (pricing, before reading: free, its text is about the request) or by `run`
    (after reading: charged, its text is for the operator only)."""

    kind = ErrorKind.EXTERNAL_LIBRARY

    def __init__(self, library: Library, message: str) -> None:
        super().__init__(message)
        self.library = library
