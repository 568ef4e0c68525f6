"""Run a query on a frame and package what it releases with the charge fixed before it ran.

The charge is always `estimate_cost`'s: a library that would spend more is stopped by its module
before anything is released, and the engine never reports a different number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpkube.engine.cost import as_payload, estimate_cost
from dpkube.engine.libraries import library_module
from dpkube.models.cost import Cost
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library, Payload


@dataclass(frozen=True)
class Release:
    """A DP result ready for the wire, and what it cost."""

    response: Any
    """The Lomas `query_response` (JSON-serialisable)."""
    cost: Cost
    """The charge: equal to `estimate_cost` for the same request and metadata."""


def to_json(value: Any) -> Any:
    """Library outputs as plain JSON values: numpy scalars unwrapped, tuples as lists, NaN as null."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def run_query(
    library: Library,
    payload: Payload | Mapping[str, Any],
    metadata: Metadata,
    frame: pd.DataFrame,
) -> Release:
    """Check and price the request, run it on `frame`, and return the release with its charge."""
    payload = as_payload(library, payload)
    cost = estimate_cost(library, payload, metadata)
    response = library_module(library).run(payload, metadata, frame, cost)
    return Release(response=to_json(response), cost=cost)
