"""The query pod is hardened, owned by its query, and named after its uid."""

from __future__ import annotations

import json

from dpkube.engine.datasets import demo_metadata
from dpkube.models.dataset import DatasetSpec
from dpkube.models.queue import QueueSpec
from dpkube.operator.pods import pod_name, query_pod, runner_input
from dpkube.operator.settings import OperatorSettings

QUERY = {
    "apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery",
    "metadata": {"name": "count", "namespace": "team", "uid": "1234-abcd"},
    "spec": {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql", "timeout": "30s",
             "smartnoiseSql": {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}},
}
DATASET = DatasetSpec(display_name="PENGUIN", url="demo://PENGUIN", metadata={})


def build(queue: QueueSpec | None = None) -> dict:
    inputs = runner_input(QUERY, DATASET, demo_metadata("PENGUIN"))
    return query_pod(QUERY, inputs, DATASET, OperatorSettings(), queue, 30)


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


def test_the_timeout_becomes_the_active_deadline() -> None:
    assert build()["spec"]["activeDeadlineSeconds"] == 30


def test_the_runner_input_carries_the_payload_and_the_dataset_location() -> None:
    env = {e["name"]: e.get("value") for e in build()["spec"]["containers"][0]["env"]}
    inputs = json.loads(env["DPKUBE_RUNNER_INPUT"])
    assert inputs["payload"]["query_str"] == "SELECT COUNT(*) AS NB_ROW FROM df"
    assert inputs["dataset"]["uri"] == "demo://PENGUIN" and inputs["mode"] == "query"


def test_a_queue_sets_the_image_and_resources_of_its_pods() -> None:
    queue = QueueSpec(image="registry.example/dpkube:gpu", resources={"limits": {"memory": "8Gi"}})
    (container,) = build(queue)["spec"]["containers"]
    assert container["image"] == "registry.example/dpkube:gpu"
    assert container["resources"]["limits"]["memory"] == "8Gi"


def test_named_plugins_are_mounted_read_only() -> None:
    query = {**QUERY, "spec": {**QUERY["spec"], "plugins": ["helpers"]}}
    inputs = runner_input(query, DATASET, demo_metadata("PENGUIN"))
    pod = query_pod(query, inputs, DATASET, OperatorSettings())
    (mount,) = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"].endswith("/helpers")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"].startswith("dpkube-plugin-")
