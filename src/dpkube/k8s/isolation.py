"""What keeps a namespace's query pods apart: their NetworkPolicy and the copies of what they mount.

The operator creates the policy in every namespace before it runs a query pod there, and copies a
dataset's credentials Secret (or a plugin package) next to the pods only after that; the copies go
again when no query there needs them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.k8s.pods import COMPONENT_LABELS

QUERY_POLICY = "dpkube-query-pods"
POLICY_PATH = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
COPY_OF_LABEL = "dpkube.io/copy-of"
"""On every copy: the name of the original in the operator's namespace."""


@dataclass(frozen=True)
class QueryEgress:
    """Where query pods may connect: DNS, the operator's claim port and the dataset stores, nothing else."""

    operator_namespace: str
    operator_labels: dict[str, str]
    claim_port: int
    dataset_cidrs: tuple[str, ...] = ()
    dataset_ports: tuple[int, ...] = field(default=(443,))


def query_network_policy(namespace: str, egress: QueryEgress) -> dict[str, Any]:
    """The policy of a namespace's runner pods: nothing comes in; out only where `egress` says."""
    rules: list[dict[str, Any]] = [
        {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": egress.operator_namespace}},
                 "podSelector": {"matchLabels": dict(egress.operator_labels)}}],
         "ports": [{"protocol": "TCP", "port": egress.claim_port}]},
    ]
    if egress.dataset_cidrs:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.dataset_cidrs],
                      "ports": [{"protocol": "TCP", "port": port} for port in egress.dataset_ports]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": QUERY_POLICY, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "dpkube"}},
        "spec": {"podSelector": {"matchLabels": dict(COMPONENT_LABELS)}, "policyTypes": ["Ingress", "Egress"],
                 "egress": rules},
    }


async def ensure_query_policy(client: KubeClient, namespace: str, egress: QueryEgress) -> None:
    """Create the namespace's query-pod policy, or bring it back to what it must say."""
    wanted = query_network_policy(namespace, egress)
    path = POLICY_PATH.format(ns=namespace)
    try:
        await client.create(path, wanted)
        return
    except Conflict:
        pass
    current = await client.get(f"{path}/{QUERY_POLICY}")
    if current.get("spec") != wanted["spec"]:
        wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await client.replace(f"{path}/{QUERY_POLICY}", wanted)


async def mirror(client: KubeClient, resource: str, source_namespace: str, name: str, copy: str,
                 namespace: str) -> bool:
    """Copy a Secret or ConfigMap next to the pods that need it (pods cannot read across namespaces).

    The copy follows every change of the original; False when the original does not exist.
    """
    try:
        original = await client.get(core_path(resource, source_namespace, name))
    except NotFound:
        return False
    body: dict[str, Any] = {"apiVersion": "v1", "kind": original["kind"],
            "metadata": {"name": copy, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "dpkube", COPY_OF_LABEL: name[:63]}},
            **{key: original[key] for key in ("type", "data", "binaryData") if key in original}}
    try:
        current = await client.get(core_path(resource, namespace, copy))
    except NotFound:
        with contextlib.suppress(Conflict):
            await client.create(core_path(resource, namespace), body)
        return True
    if any(current.get(key) != body.get(key) for key in ("data", "binaryData")):
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await client.replace(core_path(resource, namespace, copy), body)
    return True


async def delete_copy(client: KubeClient, resource: str, namespace: str, copy: str) -> None:
    with contextlib.suppress(NotFound):
        await client.delete(core_path(resource, namespace, copy))
