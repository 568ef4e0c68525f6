"""Builds the Pod that runs one DPQuery: hardened, owned by the query, never reused.

The name is derived from the query's uid, so a restarted operator can never start a second pod for
the same query. The runner gets its input in the environment and reports through a result Secret;
its service account can create Secrets and nothing else.
"""

from __future__ import annotations

import math
from typing import Any

from dpkube.k8s.plugins import MOUNT_ROOT, package_copy
from dpkube.models.crd import API_VERSION
from dpkube.models.dataset import DatasetSpec
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import DatasetRef, RunnerInput, RunnerMode
from dpkube.operator.settings import OperatorSettings

QUERY_UID_LABEL = "dpkube.io/query-uid"
QUERY_NAME_LABEL = "dpkube.io/query"
WARM_POOL_LABEL = "dpkube.io/warm-pool"
DATASET_MOUNT = "/mnt/dataset"
RUNNER_UID = 65532


def credentials_copy_name(secret: str) -> str:
    """The copy, in a query's namespace, of a dataset's credentials Secret (pods cannot read across namespaces)."""
    return f"dpkube-credentials-{secret}"[:253]


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


def _runner_pod(
    name: str,
    namespace: str,
    labels: dict[str, str],
    env: list[dict[str, Any]],
    args: list[str],
    settings: OperatorSettings,
    queue: QueueSpec | None,
    dataset: DatasetSpec | None = None,
) -> dict[str, Any]:
    """The hardened pod template every runner pod (cold or warm) shares."""
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": settings.runner_cpu_request, "memory": settings.runner_memory_request},
        "limits": {"cpu": settings.runner_cpu_limit, "memory": settings.runner_memory_limit},
    }
    if queue is not None and queue.resources is not None:
        resources = {
            "requests": {**resources["requests"], **queue.resources.requests},
            "limits": {**resources["limits"], **queue.resources.limits},
        }
    container: dict[str, Any] = {
        "name": "runner",
        "image": (queue.image if queue and queue.image else settings.runner_image),
        "imagePullPolicy": "IfNotPresent",
        "command": list(settings.runner_command),
        "args": args,
        "env": [
            *env,
            {"name": "DPKUBE_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "DPKUBE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp"},
        ],
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
    if dataset is not None and dataset.pvc is not None:
        claim = {"claimName": dataset.pvc.claim_name, "readOnly": True}
        volumes.append({"name": "dataset", "persistentVolumeClaim": claim})
        container["volumeMounts"].append({"name": "dataset", "mountPath": DATASET_MOUNT, "readOnly": True})
    if dataset is not None and dataset.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": credentials_copy_name(dataset.credentials_secret)}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, "app.kubernetes.io/managed-by": "dpkube", "app.kubernetes.io/component": "runner"},
        },
        "spec": {
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
        },
    }


def owner_reference(query: dict[str, Any]) -> dict[str, Any]:
    """Makes the query own its pod (the pod goes when the query is deleted)."""
    return {"apiVersion": API_VERSION, "kind": "DPQuery", "name": query["metadata"]["name"],
            "uid": query["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def query_labels(query: dict[str, Any]) -> dict[str, str]:
    meta = query["metadata"]
    return {QUERY_UID_LABEL: meta["uid"], QUERY_NAME_LABEL: meta["name"][:63].rstrip("-_.")}


def query_pod(
    query: dict[str, Any],
    inputs: RunnerInput,
    dataset: DatasetSpec,
    settings: OperatorSettings,
    queue: QueueSpec | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """A cold pod for one query: its input in the environment, its name derived from the query's uid."""
    meta = query["metadata"]
    env = [
        {"name": "DPKUBE_RUNNER_INPUT", "value": inputs.model_dump_json(by_alias=False)},
        {"name": "DPKUBE_QUERY_UID", "value": meta["uid"]},
    ]
    pod = _runner_pod(pod_name(meta["uid"]), meta["namespace"], query_labels(query), env,
                      ["--result-secret"], settings, queue, dataset if inputs.mode == RunnerMode.QUERY else None)
    pod["metadata"]["ownerReferences"] = [owner_reference(query)]
    for index, plugin in enumerate(query["spec"].get("plugins") or []):
        volume = f"plugin-{index}"
        pod["spec"]["volumes"].append({"name": volume, "configMap": {"name": package_copy(plugin)}})
        pod["spec"]["containers"][0]["volumeMounts"].append(
            {"name": volume, "mountPath": f"{MOUNT_ROOT}/{plugin}", "readOnly": True})
    if timeout_seconds is not None:
        pod["spec"]["activeDeadlineSeconds"] = max(1, math.ceil(timeout_seconds))
    return pod


def warm_pod(name: str, namespace: str, queue_name: str, token: str, claim_url: str, settings: OperatorSettings,
             queue: QueueSpec | None) -> dict[str, Any]:
    """A pre-started runner that imports the libraries, then claims exactly one query from the operator."""
    env = [{"name": "DPKUBE_CLAIM_URL", "value": claim_url}, {"name": "DPKUBE_CLAIM_TOKEN", "value": token}]
    args = ["--warm", "--claim", "--result-secret"]
    if queue is not None and queue.warm_libraries:
        args += ["--libraries", ",".join(library.value for library in queue.warm_libraries)]
    return _runner_pod(name, namespace, {WARM_POOL_LABEL: queue_name}, env, args, settings, queue)


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
