"""Whether a Dataset can be queried: its spec and Lomas metadata must validate."""

from __future__ import annotations

from typing import Any

from dpkube.k8s.datasets import DatasetInvalid, parse_dataset


def dataset_status(body: dict[str, Any]) -> dict[str, Any]:
    """`{ready, message}` for a Dataset object; the message names the first field at fault."""
    try:
        parse_dataset(body)
    except DatasetInvalid as exc:
        return {"ready": False, "message": str(exc)}
    return {"ready": True, "message": None}
