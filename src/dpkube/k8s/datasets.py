"""Datasets as users name them (PENGUIN), resolved from the Dataset objects of the system namespace.

The one place that turns a Dataset object into a validated spec and Lomas metadata, for the operator
(admission and pods), the facade (metadata routes, pricing) and the Dataset status handler alike.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dpkube.k8s.client import KubeClient, NotFound
from dpkube.k8s.informer import Informer
from dpkube.models.dataset import DatasetSpec, dataset_object_name
from dpkube.models.kinds import DATASET
from dpkube.models.metadata import Metadata

PARSED_LIMIT = 1024


class DatasetInvalid(Exception):
    """A Dataset object whose spec or metadata does not validate; the message names the first field at fault."""


@dataclass(frozen=True)
class Dataset:
    """A Dataset object as queries need it: its user-facing name, spec and validated metadata."""

    name: str
    spec: DatasetSpec
    metadata: Metadata

    @functools.cached_property
    def metadata_digest(self) -> str:
        """sha256 of the metadata's canonical JSON: what a query was priced on, whatever changes later."""
        return metadata_digest(self.metadata)


def metadata_digest(metadata: Metadata) -> str:
    canonical = json.dumps(metadata.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_dataset(body: dict[str, Any]) -> Dataset:
    """Validate a Dataset object; DatasetInvalid names the field at fault."""
    try:
        spec = DatasetSpec.model_validate(body.get("spec") or {})
        metadata = Metadata.model_validate(spec.lomas_metadata())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise DatasetInvalid(f"invalid {where}: {error['msg']}") from None
    return Dataset(spec.display_name or body["metadata"]["name"], spec, metadata)


class Datasets:
    """Look-ups by the name users query by (from a watch-fed view when one is given); parsed once per version."""

    def __init__(self, client: KubeClient, namespace: str, informer: Informer | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.informer = informer
        self._parsed: dict[tuple[str, str], Dataset] = {}

    async def get(self, name: str) -> Dataset | None:
        """The dataset users call `name`, or None; DatasetInvalid when its object does not validate."""
        object_name = dataset_object_name(name)
        if self.informer is not None and self.informer.synced:
            body = self.informer.objects.get(object_name)
        else:
            try:
                body = await self.client.get(DATASET.api_path(self.namespace, object_name))
            except NotFound:
                body = None
        if body is None:
            return None
        key = (body["metadata"]["name"], body["metadata"].get("resourceVersion", ""))
        if key not in self._parsed:
            if len(self._parsed) >= PARSED_LIMIT:
                self._parsed.clear()
            self._parsed[key] = parse_dataset(body)
        dataset = self._parsed[key]
        return dataset if dataset.name == name else None
