"""Datasets as users name them (PENGUIN), resolved from the Dataset objects of the system namespace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dpkube.api.errors import InternalServerException, InvalidQueryException
from dpkube.api.services.informer import Informer
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.models.dataset import DatasetSpec, dataset_object_name
from dpkube.models.kinds import DATASET
from dpkube.models.metadata import Metadata


def unknown_dataset(name: str) -> InvalidQueryException:
    return InvalidQueryException(f"Dataset {name} does not exist. Please, verify the client object initialisation.")


@dataclass(frozen=True)
class Dataset:
    """A Dataset object as the facade needs it: its user-facing name, spec and validated metadata."""

    name: str
    spec: DatasetSpec
    metadata: Metadata


class Datasets:
    """Look-ups by the name users query by; parsed metadata is kept per object version."""

    def __init__(self, client: KubeClient, namespace: str, informer: Informer | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.informer = informer
        self._parsed: dict[tuple[str, str], Dataset] = {}

    async def get(self, name: str) -> Dataset:
        """The dataset users call `name`; 400 with Lomas' message when there is none."""
        object_name = dataset_object_name(name)
        if self.informer is not None and self.informer.synced:
            body = self.informer.objects.get(object_name)
        else:
            try:
                body = await self.client.get(DATASET.api_path(self.namespace, object_name))
            except NotFound:
                body = None
        if body is None:
            raise unknown_dataset(name)
        return self._parse(name, body)

    def _parse(self, name: str, body: dict[str, Any]) -> Dataset:
        key = (body["metadata"]["name"], body["metadata"].get("resourceVersion", ""))
        if key not in self._parsed:
            try:
                spec = DatasetSpec.model_validate(body["spec"])
                metadata = Metadata.model_validate(spec.lomas_metadata())
            except ValidationError as exc:
                raise InternalServerException(f"dataset {key[0]} is invalid: {exc.errors()[0]['msg']}") from None
            if len(self._parsed) > 1024:
                self._parsed.clear()
            self._parsed[key] = Dataset(spec.display_name or body["metadata"]["name"], spec, metadata)
        dataset = self._parsed[key]
        if dataset.name != name:
            raise unknown_dataset(name)
        return dataset
