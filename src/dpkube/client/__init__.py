"""Python clients of the dpkube facade: `Client` for the Lomas API, `DioptraClient` for the Dioptra v0 API.

Only httpx and pydantic are needed to import them; pandas is loaded when a DataFrame is returned.
"""

from dpkube.client.dioptra import DioptraClient
from dpkube.client.errors import (
    ExternalLibraryException,
    InternalServerException,
    InvalidQueryException,
    LomasClientError,
    QueryStillRunningException,
    UnauthorizedAccessException,
)
from dpkube.client.lomas import Client
from dpkube.models.progress import QueryProgress

__all__ = [
    "Client",
    "DioptraClient",
    "ExternalLibraryException",
    "InternalServerException",
    "InvalidQueryException",
    "LomasClientError",
    "QueryProgress",
    "QueryStillRunningException",
    "UnauthorizedAccessException",
]
