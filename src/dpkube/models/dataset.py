"""Dataset: where a sensitive dataset lives and its Lomas-style metadata; only admins write these."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from dpkube.models.base import KubeModel


def dataset_object_name(display_name: str) -> str:
    """The Dataset object's name for the name users query by (PENGUIN -> penguin)."""
    return re.sub(r"[^a-z0-9-]+", "-", display_name.lower()).strip("-")[:253] or "invalid"


class PvcSource(KubeModel):
    """A file on a PersistentVolumeClaim, mounted read-only into the query pod."""

    claim_name: str = Field(min_length=1, max_length=253)
    """The PersistentVolumeClaim in the query pods' namespace."""
    path: str = Field(min_length=1, max_length=1024)
    """Path of the file inside the volume."""


class DatasetSpec(KubeModel):
    """One dataset: its source and its metadata."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "(has(self.url) ? 1 : 0) + (has(self.pvc) ? 1 : 0) == 1",
                 "message": "exactly one of url and pvc must be set"},
            ]
        }
    }

    display_name: str | None = Field(default=None, max_length=253)
    """The name users query it by (e.g. PENGUIN); defaults to the object's name."""
    url: str | None = Field(default=None, max_length=2048, pattern=r"^(demo|file|https?|s3)://.+|^/.+")
    """Location: an absolute path, or a demo://, file://, https://, http:// or s3:// URL."""
    pvc: PvcSource | None = None
    """A file on a PersistentVolumeClaim."""
    format: str = Field(default="csv", pattern=r"^(csv|parquet)$")
    """File format: csv or parquet."""
    credentials_secret: str | None = Field(default=None, max_length=253)
    """Secret (operator namespace) with credentials for the url, as environment variables."""
    metadata: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """Lomas-format metadata: max_ids, rows, row_privacy, columns with types and bounds."""
    column_order: list[str] = Field(default_factory=list, max_length=4096)
    """The columns in file order (the API server keeps map keys sorted, not in the order written)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> DatasetSpec:
        if (self.url is None) == (self.pvc is None):
            raise ValueError("exactly one of url and pvc must be set")
        columns = (self.metadata.get("columns") or {}) if isinstance(self.metadata, dict) else {}
        if self.column_order and sorted(self.column_order) != sorted(columns):
            raise ValueError("columnOrder must list exactly the metadata's columns")
        return self

    def lomas_metadata(self) -> dict[str, Any]:
        """The metadata with its columns in file order (dummy data and header-less CSV depend on it)."""
        columns = self.metadata.get("columns") or {}
        if not self.column_order:
            return self.metadata
        return {**self.metadata, "columns": {name: columns[name] for name in self.column_order}}


class DatasetStatus(KubeModel):
    """Whether the dataset can be queried."""

    ready: bool = False
    """The metadata is valid and the dataset may be queried."""
    message: str | None = None
    """Why it is not ready."""
