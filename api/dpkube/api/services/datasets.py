"""Datasets for the facade: the shared look-up, with Lomas' answers for a missing or broken dataset."""

from __future__ import annotations

from dpkube.api.errors import InternalServerException, InvalidQueryException
from dpkube.k8s.client import KubeClient
from dpkube.k8s.datasets import Dataset, DatasetInvalid
from dpkube.k8s.datasets import Datasets as Catalog
from dpkube.k8s.informer import Informer

__all__ = ["Dataset", "Datasets", "unknown_dataset"]


def unknown_dataset(name: str) -> InvalidQueryException:
    return InvalidQueryException(f"Dataset {name} does not exist. Please, verify the client object initialisation.")


class Datasets:
    """The shared catalog, answering 400 for an unknown dataset and 500 for a broken one."""

    def __init__(self, client: KubeClient, namespace: str, informer: Informer | None = None) -> None:
        self.catalog = Catalog(client, namespace, informer)

    async def get(self, name: str) -> Dataset:
        try:
            found = await self.catalog.get(name)
        except DatasetInvalid as exc:
            raise InternalServerException(f"dataset {name} is invalid: {exc}") from None
        if found is None:
            raise unknown_dataset(name)
        return found
