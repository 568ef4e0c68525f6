"""Builds the Pod that runs one DPQuery: hardened, owned by the query, never reused.

The name is derived from the query's uid, so a restarted operator can never start a second pod for
the same query. The runner gets its input in the environment and reports through a result Secret;
its service account can create Secrets and nothing else.
"""

from __future__ import annotations

import math
from typing import Any

from dpkube.models.crd import API_VERSION
from dpkube.models.dataset import DatasetSpec
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import DatasetRef, RunnerInput, RunnerMode
from dpkube.operator.settings import OperatorSettings

QUERY_UID_LABEL = "dpkube.io/query-uid"
QUERY_NAME_LABEL = "dpkube.io/query"
DATASET_MOUNT = "/mnt/dataset"
RUNNER_UID = 65532


def pod_name(uid: str) -> str:
    return f"dpq-{uid}"


def dataset_uri(dataset: DatasetSpec) -> str:
    """Where the runner finds the data inside its pod."""
    if dataset.pvc is not None:
        return f"{DATASET_MOUNT}/{dataset.pvc.path.lstrip('/')}"
    assert dataset.url is not None
    return dataset.url


def runner_input(query: dict[str, Any], dataset: DatasetSpec, metadata: Any) -> RunnerInput:
    """The runner's input for a DPQuery (dummy mode never sees the data's location)."""
    from dpkube.models.dpquery import DPQuerySpec, Mode

    spec = DPQuerySpec.model_validate(query["spec"])
    dummy = spec.dummy
    return RunnerInput(
        library=spec.library,
        mode=RunnerMode.DUMMY if spec.mode == Mode.DUMMY else RunnerMode.QUERY,
        payload=spec.payload,
        dataset=DatasetRef(uri=None if spec.mode == Mode.DUMMY else dataset_uri(dataset), metadata=metadata),
        dummy_nb_rows=dummy.rows if dummy else 100,
        dummy_seed=dummy.seed if dummy else 42,
    )


def query_pod(
    query: dict[str, Any],
    inputs: RunnerInput,
    dataset: DatasetSpec,
    settings: OperatorSettings,
    queue: QueueSpec | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """The Pod manifest for one query."""
    meta = query["metadata"]
    uid = meta["uid"]
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": settings.runner_cpu_request, "memory": settings.runner_memory_request},
        "limits": {"cpu": settings.runner_cpu_limit, "memory": settings.runner_memory_limit},
    }
    if queue is not None and queue.resources is not None:
        resources = {
            "requests": {**resources["requests"], **queue.resources.requests},
            "limits": {**resources["limits"], **queue.resources.limits},
        }
    env = [
        {"name": "DPKUBE_RUNNER_INPUT", "value": inputs.model_dump_json(by_alias=False)},
        {"name": "DPKUBE_RESULT_SECRET_UID", "value": uid},
        {"name": "DPKUBE_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TMPDIR", "value": "/tmp"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp"},
    ]
    container: dict[str, Any] = {
        "name": "runner",
        "image": (queue.image if queue and queue.image else settings.runner_image),
        "imagePullPolicy": "IfNotPresent",
        "command": list(settings.runner_command),
        "args": ["--output", "secret"],
        "env": env,
        "resources": resources,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]
    if dataset.pvc is not None and inputs.mode == RunnerMode.QUERY:
        claim = {"claimName": dataset.pvc.claim_name, "readOnly": True}
        volumes.append({"name": "dataset", "persistentVolumeClaim": claim})
        container["volumeMounts"].append({"name": "dataset", "mountPath": DATASET_MOUNT, "readOnly": True})
    if dataset.credentials_secret and inputs.mode == RunnerMode.QUERY:
        container["envFrom"] = [{"secretRef": {"name": dataset.credentials_secret}}]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.runner_service_account,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if timeout_seconds is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(timeout_seconds))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(uid),
            "namespace": meta["namespace"],
            "labels": {
                QUERY_UID_LABEL: uid,
                QUERY_NAME_LABEL: meta["name"][:63].rstrip("-_."),
                "app.kubernetes.io/managed-by": "dpkube",
                "app.kubernetes.io/component": "runner",
            },
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": "DPQuery",
                "name": meta["name"],
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": spec,
    }


def runner_access(namespace: str, service_account: str) -> list[tuple[str, dict[str, Any]]]:
    """The ServiceAccount, Role and RoleBinding that let query pods create result Secrets, and no more."""
    labels = {"app.kubernetes.io/managed-by": "dpkube"}
    return [
        ("/api/v1/namespaces/{ns}/serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
        }),
        ("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}],
        }),
        ("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": service_account},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        }),
    ]
