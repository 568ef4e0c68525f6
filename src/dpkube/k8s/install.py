"""Puts a fresh API server in shape for dpkube: CRDs, namespaces, demo datasets (idempotent)."""

from __future__ import annotations

from dpkube.k8s.client import Conflict, KubeClient, core_path
from dpkube.k8s.crds import apply_crds
from dpkube.k8s.demo import demo_dataset_manifests
from dpkube.models.kinds import DATASET


async def ensure_namespace(client: KubeClient, name: str) -> None:
    try:
        await client.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": name}})
    except Conflict:
        pass


async def install_demo_datasets(client: KubeClient, system_namespace: str) -> None:
    for manifest in demo_dataset_manifests(system_namespace):
        try:
            await client.create(DATASET.api_path(system_namespace), manifest)
        except Conflict:
            pass


async def install(client: KubeClient, system_namespace: str, query_namespaces: list[str], *, demo: bool) -> None:
    """CRDs, the operator's and the queries' namespaces, and (for demos) the demo datasets."""
    await apply_crds(client)
    for namespace in [system_namespace, *query_namespaces]:
        await ensure_namespace(client, namespace)
    if demo:
        await install_demo_datasets(client, system_namespace)
