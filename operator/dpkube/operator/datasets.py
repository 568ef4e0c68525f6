"""Whether a Dataset can be queried: its spec and Lomas metadata must validate."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dpkube.models.dataset import DatasetSpec
from dpkube.models.metadata import Metadata


def dataset_status(spec: dict[str, Any]) -> dict[str, Any]:
    """`{ready, message}` for a Dataset spec; the message names the first field at fault."""
    try:
        parsed = DatasetSpec.model_validate(spec)
        Metadata.model_validate(parsed.lomas_metadata())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return {"ready": False, "message": f"invalid {where}: {error['msg']}"}
    return {"ready": True, "message": None}
