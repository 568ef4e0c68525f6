"""The query pod is hardened, owned by its query, named after its uid, and reaches only the operator."""

from __future__ import annotations

import pytest

from dpkube.k8s.pods import COMPONENT_LABELS, PodTemplate, claim_token, pod_name, query_pod, warm_pod
from dpkube.models.dataset import DatasetSpec
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import RunnerSettings

QUERY = {
    "apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery",
    "metadata": {"name": "count", "namespace": "team", "uid": "1234-abcd"},
    "spec": {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql", "timeout": "30s",
             "smartnoiseSql": {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}},
}
DATASET = DatasetSpec(display_name="PENGUIN", url="demo://PENGUIN", metadata={}, credentials_secret="store")
TEMPLATE = PodTemplate(image="dpkube:test")
RUNNER = RunnerSettings(claim_url="http://operator:8081", claim_token="secret-of-this-pod")


def build(queue: QueueSpec | None = None, query: dict | None = None) -> dict:
    return query_pod(query or QUERY, RUNNER, TEMPLATE, dataset=DATASET, queue=queue, timeout_seconds=30)


def env_of(pod: dict) -> dict:
    return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}


def test_the_pod_is_named_after_the_query_uid_and_owned_by_the_query() -> None:
    pod = build()
    assert pod["metadata"]["name"] == pod_name("1234-abcd") == "dpq-1234-abcd"
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner["kind"] == "DPQuery" and owner["uid"] == "1234-abcd" and owner["controller"] is True


def test_the_pod_runs_hardened() -> None:
    pod = build()
    (container,) = pod["spec"]["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["enableServiceLinks"] is False


def test_the_pod_has_no_api_server_identity() -> None:
    pod = build()
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["serviceAccountName"] == TEMPLATE.service_account


def test_the_pod_carries_the_labels_its_network_policy_selects() -> None:
    assert COMPONENT_LABELS.items() <= build()["metadata"]["labels"].items()


def test_the_timeout_becomes_the_active_deadline() -> None:
    assert build()["spec"]["activeDeadlineSeconds"] == 30


def test_the_pod_gets_its_claim_channel_and_secret_but_never_its_input() -> None:
    pod = build()
    env = env_of(pod)
    assert env["DPKUBE_CLAIM_URL"]["value"] == "http://operator:8081"
    assert claim_token(pod) == "secret-of-this-pod"
    assert env["DPKUBE_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "DPKUBE_RUNNER_INPUT" not in env and "--claim" in pod["spec"]["containers"][0]["args"]


def test_a_cold_pod_imports_only_its_querys_library() -> None:
    assert env_of(build())["DPKUBE_LIBRARIES"]["value"] == "smartnoise-sql"


def test_a_pod_that_reads_the_data_gets_the_dataset_credentials_copy() -> None:
    (source,) = build()["spec"]["containers"][0]["envFrom"]
    assert source == {"secretRef": {"name": "dpkube-credentials-store"}}


def test_a_pod_of_dummy_data_gets_no_dataset_at_all() -> None:
    pod = query_pod(QUERY, RUNNER, TEMPLATE, dataset=None)
    assert "envFrom" not in pod["spec"]["containers"][0]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["tmp"]


def test_a_queue_sets_the_image_and_resources_of_its_pods() -> None:
    queue = QueueSpec(image="registry.example/dpkube:gpu", resources={"limits": {"memory": "8Gi"}})
    (container,) = build(queue)["spec"]["containers"]
    assert container["image"] == "registry.example/dpkube:gpu"
    assert container["resources"]["limits"]["memory"] == "8Gi"


def test_named_plugins_are_mounted_read_only() -> None:
    pod = build(query={**QUERY, "spec": {**QUERY["spec"], "plugins": ["helpers"]}})
    (mount,) = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"].endswith("/helpers")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"].startswith("dpkube-plugin-")


def test_a_warm_pod_waits_for_a_query_with_the_libraries_its_queue_names() -> None:
    runner = RunnerSettings(claim_url="http://operator:8081", claim_token="t", libraries="opendp")
    pod = warm_pod("dpq-warm-default-1", "team", "default", runner, TEMPLATE, QueueSpec(warm_pods=1))
    assert pod["spec"]["containers"][0]["args"] == ["--warm", "--claim"]
    assert env_of(pod)["DPKUBE_LIBRARIES"]["value"] == "opendp" and "ownerReferences" not in pod["metadata"]


def test_a_pods_runner_settings_are_only_what_the_operator_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPKUBE_RUNNER_DEBUG", "true")
    monkeypatch.setenv("DPKUBE_WAIT_TIMEOUT", "5")
    runner = RunnerSettings.for_pod("http://operator:8081", "t", "opendp")
    env = env_of(query_pod(QUERY, runner, TEMPLATE, dataset=DATASET))
    assert "DPKUBE_RUNNER_DEBUG" not in env and "DPKUBE_WAIT_TIMEOUT" not in env
    assert env["DPKUBE_CLAIM_TOKEN"]["value"] == "t"
