"""The demo datasets (PENGUIN, TITANIC, FSO_INCOME_SYNTHETIC) as Dataset objects, for `make dev` and tests."""

from __future__ import annotations

from typing import Any

from dpkube.engine.datasets import DEMO_SCHEME, demo_datasets
from dpkube.models.crd import API_VERSION
from dpkube.models.dataset import DatasetSpec, dataset_object_name


def dataset_manifest(namespace: str, display_name: str, spec: DatasetSpec) -> dict[str, Any]:
    """A Dataset object; its name is the lower-case form of the name users query by."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Dataset",
        "metadata": {"name": dataset_object_name(display_name), "namespace": namespace},
        "spec": spec.to_kube(),
    }


def demo_dataset_manifests(namespace: str) -> list[dict[str, Any]]:
    """Every demo dataset; one without shipped data still serves dummy queries and cost estimates."""
    manifests = []
    for name, (uri, metadata) in demo_datasets().items():
        spec = DatasetSpec(
            display_name=name,
            url=uri or f"{DEMO_SCHEME}://{name}",
            metadata=metadata.model_dump(mode="json", exclude_none=True),
            column_order=list(metadata.columns),
        )
        manifests.append(dataset_manifest(namespace, name, spec))
    return manifests
