"""Puts a fresh API server in shape for dpkube: CRDs, namespaces, demo datasets (idempotent)."""

from __future__ import annotations

import contextlib
from typing import Any

from dpkube.k8s import policy
from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.k8s.crds import apply_crds
from dpkube.k8s.demo import demo_dataset_manifests
from dpkube.models.crd import API_VERSION
from dpkube.models.kinds import DATASET, QUEUE
from dpkube.models.queue import DEFAULT_QUEUE, default_queue_spec


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


CLUSTER_PATHS = {
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ValidatingAdmissionPolicy": "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
}


async def apply(client: KubeClient, manifest: dict[str, Any]) -> None:
    """Create a cluster-scoped object, or replace it with this version."""
    collection = CLUSTER_PATHS[manifest["kind"]]
    path = f"{collection}/{manifest['metadata']['name']}"
    try:
        current = await client.get(path)
    except NotFound:
        await client.create(collection, manifest)
        return
    await client.replace(path, {**manifest, "metadata": {**manifest["metadata"],
                                                         "resourceVersion": current["metadata"]["resourceVersion"]}})


async def install_access(client: KubeClient, system_namespace: str) -> None:
    """The user and admin roles, the admission policy on spec.user (the facade's and the operator's accounts
    exempt), and the guard that keeps the facade off budget grants."""
    facade, operator = (f"system:serviceaccount:{system_namespace}:{account}"
                        for account in ("dpkube-api", "dpkube-operator"))
    for manifest in [policy.user_role(), policy.admin_role(), *policy.query_owner_policy([facade, operator]),
                     *policy.grant_guard_policy([facade])]:
        await apply(client, manifest)


async def install_default_queue(client: KubeClient, system_namespace: str) -> None:
    """The default Queue, as the Helm chart installs it (kept as it is when it exists)."""
    manifest = {"apiVersion": API_VERSION, "kind": QUEUE.kind, "metadata": {"name": DEFAULT_QUEUE},
                "spec": default_queue_spec().to_kube()}
    with contextlib.suppress(Conflict):
        await client.create(QUEUE.api_path(system_namespace), manifest)


async def install(client: KubeClient, system_namespace: str, query_namespaces: list[str], *, demo: bool) -> None:
    """CRDs, roles and admission policy, the operator's and the queries' namespaces, the default Queue,
    and demo datasets."""
    await apply_crds(client)
    await install_access(client, system_namespace)
    for namespace in [system_namespace, *query_namespaces]:
        await ensure_namespace(client, namespace)
    await install_default_queue(client, system_namespace)
    if demo:
        await install_demo_datasets(client, system_namespace)
