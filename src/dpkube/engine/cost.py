"""What a query costs, from the request and the metadata alone: the charge admission reserves.

Pure and data-free so that it can run before any access to the data (Lomas fitted models on
private data just to price them). Each library's own accounting is used, never the user's numbers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from dpkube.engine.errors import PayloadRejected
from dpkube.engine.libraries import library_module
from dpkube.models.cost import Cost
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import PAYLOAD_TYPES, Library, Payload


def as_payload(library: Library, payload: Payload | Mapping[str, Any]) -> Payload:
    """The payload as the library's model; a dict is validated, a wrong model is refused."""
    model = PAYLOAD_TYPES[Library(library)]
    if isinstance(payload, model):
        return payload
    if isinstance(payload, Mapping):
        try:
            return model.model_validate(dict(payload))  # type: ignore[return-value]
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise PayloadRejected(f"invalid {library} payload: {where}: {first['msg']}") from None
    raise PayloadRejected(f"a {library} query needs a {model.__name__}, got {type(payload).__name__}")


CACHE_SIZE = 256
_cache: OrderedDict[tuple[str, str, str], Cost] = OrderedDict()
_cache_lock = threading.Lock()


def estimate_cost(library: Library, payload: Payload | Mapping[str, Any], metadata: Metadata) -> Cost:
    """The (epsilon, delta) the query will be charged, with its rho when the release is zCDP (what a zCDP grant
    charges); raises the refusals of the library's checks.

    Memoised on the request and metadata (the function is pure): admission re-prices what a user
    estimated a moment before, and smartnoise-sql's noise-scale search takes tens of milliseconds.
    """
    library = Library(library)
    payload = as_payload(library, payload)
    key = (library.value, payload.model_dump_json(), metadata.model_dump_json())
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    cost: Cost = library_module(library).cost(payload, metadata)
    with _cache_lock:
        _cache[key] = cost
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return cost
