"""The Pods that run DPQueries: hardened, owned by their query, one query each, never reused.

A cold pod's name is derived from the query's uid, so no restart or race can start a second one. Every
runner pod (cold or warm) talks to the operator only: it gets its input, asks leave to read the data
and hands in its result over the claim channel with a secret of its own. It has no service-account
token and no access to the API server, so it can deliver nothing but its own query's result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dpkube.k8s.plugins import MOUNT_ROOT, package_copy
from dpkube.models.crd import API_VERSION
from dpkube.models.dataset import DatasetSpec
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import RunnerSettings
from dpkube.models.zygote import RUNNER_MODULE

QUERY_UID_LABEL = "dpkube.io/query-uid"
QUERY_NAME_LABEL = "dpkube.io/query"
WARM_POOL_LABEL = "dpkube.io/warm-pool"
COMPONENT_LABELS = {"app.kubernetes.io/managed-by": "dpkube", "app.kubernetes.io/component": "runner"}
"""Every runner pod carries these: the per-namespace NetworkPolicy selects on them."""
DATASET_MOUNT = "/mnt/dataset"
RUNNER_UID = 65532


@dataclass(frozen=True)
class PodTemplate:
    """What an admin sets for every runner pod (a Queue may override the image and resources)."""

    image: str
    command: tuple[str, ...] = ("python", "-m", RUNNER_MODULE)
    service_account: str = "dpkube-runner"
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "250m", "memory": "512Mi"})
    limits: dict[str, str] = field(default_factory=lambda: {"cpu": "2", "memory": "4Gi"})


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


def owner_reference(query: dict[str, Any]) -> dict[str, Any]:
    """Makes the query own its pod (the pod goes when the query is deleted)."""
    return {"apiVersion": API_VERSION, "kind": "DPQuery", "name": query["metadata"]["name"],
            "uid": query["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def query_labels(query: dict[str, Any]) -> dict[str, str]:
    meta = query["metadata"]
    return {QUERY_UID_LABEL: meta["uid"], QUERY_NAME_LABEL: meta["name"][:63].rstrip("-_.")}


def _runner_pod(name: str, namespace: str, labels: dict[str, str], settings: RunnerSettings, args: list[str],
                template: PodTemplate, queue: QueueSpec | None, dataset: DatasetSpec | None = None) -> dict[str, Any]:
    """The hardened pod template every runner pod (cold or warm) shares."""
    requests, limits = dict(template.requests), dict(template.limits)
    if queue is not None and queue.resources is not None:
        requests.update(queue.resources.requests)
        limits.update(queue.resources.limits)
    container: dict[str, Any] = {
        "name": "runner",
        "image": queue.image if queue is not None and queue.image else template.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(template.command),
        "args": args,
        "env": [
            *settings.to_env(),
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp"},
        ],
        "resources": {"requests": requests, "limits": limits},
        "terminationMessagePolicy": "File",
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
        "metadata": {"name": name, "namespace": namespace, "labels": {**labels, **COMPONENT_LABELS}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": template.service_account,
            "automountServiceAccountToken": False,
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


def query_pod(query: dict[str, Any], settings: RunnerSettings, template: PodTemplate, *,
              dataset: DatasetSpec | None, queue: QueueSpec | None = None,
              timeout_seconds: float | None = None) -> dict[str, Any]:
    """A cold pod for one query, named after its uid; `dataset` only when it reads the private data.

    It imports its query's library only while it claims its input: every library would need torch, which
    an image without synthetic data lacks."""
    meta = query["metadata"]
    settings = settings.model_copy(update={"libraries": str(query["spec"]["library"])})
    pod = _runner_pod(pod_name(meta["uid"]), meta["namespace"], query_labels(query), settings, ["--claim"],
                      template, queue, dataset)
    pod["metadata"]["ownerReferences"] = [owner_reference(query)]
    for index, plugin in enumerate(query["spec"].get("plugins") or []):
        volume = f"plugin-{index}"
        pod["spec"]["volumes"].append({"name": volume, "configMap": {"name": package_copy(plugin)}})
        pod["spec"]["containers"][0]["volumeMounts"].append(
            {"name": volume, "mountPath": f"{MOUNT_ROOT}/{plugin}", "readOnly": True})
    if timeout_seconds is not None:
        pod["spec"]["activeDeadlineSeconds"] = max(1, math.ceil(timeout_seconds))
    return pod


def warm_pod(name: str, namespace: str, queue_name: str, settings: RunnerSettings, template: PodTemplate,
             queue: QueueSpec | None) -> dict[str, Any]:
    """A pre-started runner that imports the libraries, then claims exactly one query from the operator."""
    return _runner_pod(name, namespace, {WARM_POOL_LABEL: queue_name}, settings, ["--warm", "--claim"], template,
                       queue)


def claim_token(pod: dict[str, Any]) -> str | None:
    """The pod's claim secret, as the operator wrote it into the pod's environment."""
    variable = f"{RunnerSettings.model_config.get('env_prefix', '')}CLAIM_TOKEN"
    for entry in pod["spec"]["containers"][0].get("env") or []:
        if entry.get("name") == variable:
            return str(entry["value"]) if entry.get("value") is not None else None
    return None


def runner_service_account(namespace: str, name: str) -> dict[str, Any]:
    """The runner pods' service account: it must exist for pods to be admitted, and grants nothing."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "dpkube"}}}
