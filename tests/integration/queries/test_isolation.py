"""What keeps query pods apart: the namespace's NetworkPolicy before credentials, copies that go when
unneeded, a claim channel on which a pod speaks only for its own query, and the metadata it was priced on."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from dpkube.engine.datasets import demo_metadata
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, NotFound, core_path
from dpkube.k8s.datasets import Datasets
from dpkube.k8s.demo import dataset_manifest
from dpkube.k8s.isolation import POLICY_PATH, QUERY_POLICY
from dpkube.k8s.pods import COMPONENT_LABELS, claim_token, credentials_copy_name
from dpkube.k8s.snapshots import Snapshots
from dpkube.models.dataset import DatasetSpec
from dpkube.models.kinds import DATASET, DPQUERY
from dpkube.operator.domain.lifecycle import QueryView
from dpkube.operator.launcher import Launcher
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.registry import Registry
from dpkube.operator.settings import OperatorSettings
from dpkube_testing.builders import dpquery
from dpkube_testing.waiting import wait_for_phase

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")


async def credentialed_dataset(admin: KubeClient, system_namespace: str, name: str) -> str:
    """A Dataset whose url needs credentials (the demo rows, so the query runs) and the Secret holding them."""
    await admin.create(core_path("secrets", system_namespace), {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name.lower()}-creds"},
        "stringData": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}})
    metadata = demo_metadata("PENGUIN")
    spec = DatasetSpec(display_name=name, url="demo://PENGUIN", credentials_secret=f"{name.lower()}-creds",
                       metadata=metadata.model_dump(mode="json", exclude_none=True),
                       column_order=list(metadata.columns))
    await admin.create(DATASET.api_path(system_namespace), dataset_manifest(system_namespace, name, spec))
    return f"{name.lower()}-creds"


async def test_query_pods_run_under_the_namespaces_network_policy(
    admin: KubeClient, namespace: str, budgets: Budgets, create, platform_env: dict[str, str]
) -> None:
    await budgets.grant("iso", "PENGUIN", epsilon=1, delta=0.005)
    await create(dpquery("count", user="iso"))
    await wait_for_phase(admin, namespace, "count", "Succeeded", "Failed", "Rejected")
    policy = await admin.get(f"{POLICY_PATH.format(ns=namespace)}/{QUERY_POLICY}")
    assert policy["spec"]["podSelector"]["matchLabels"] == COMPONENT_LABELS
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy["spec"]
    ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])}
    assert ports == {53, int(platform_env["DPKUBE_CLAIM_LISTEN"].rpartition(":")[2])}


async def test_credentials_are_copied_only_under_the_policy_and_removed_when_unneeded(
    admin: KubeClient, namespace: str, budgets: Budgets, create, system_namespace: str
) -> None:
    name = f"S3-{namespace}"
    secret = await credentialed_dataset(admin, system_namespace, name)
    await budgets.grant("iso", name, epsilon=1, delta=0.005)
    await create(dpquery("count", user="iso", dataset=name))
    copy = credentials_copy_name(secret)
    seen_copy = False
    for _ in range(600):
        query = await admin.get(DPQUERY.api_path(namespace, "count"))
        try:
            await admin.get(core_path("secrets", namespace, copy))
            await admin.get(f"{POLICY_PATH.format(ns=namespace)}/{QUERY_POLICY}")  # never a copy without it
            seen_copy = True
        except NotFound:
            pass
        if (query.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not query["metadata"].get(
                "finalizers"):
            break
        await asyncio.sleep(0.05)
    assert seen_copy and query["status"]["phase"] == "Succeeded", query.get("status")
    with pytest.raises(NotFound):
        await admin.get(core_path("secrets", namespace, copy))


async def running_pod(admin: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    for _ in range(600):
        status = (await admin.get(DPQUERY.api_path(namespace, name))).get("status") or {}
        if status.get("podName"):
            return await admin.get(core_path("pods", namespace, status["podName"]))
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never got a pod")


async def test_a_pod_speaks_only_for_its_own_query_on_the_claim_channel(
    admin: KubeClient, namespace: str, budgets: Budgets, create, platform_env: dict[str, str]
) -> None:
    await budgets.grant("victim", "PENGUIN", epsilon=5, delta=0.005)
    await create(dpquery("mine", user="victim"))
    pod = await running_pod(admin, namespace, "mine")
    url = platform_env["DPKUBE_CLAIM_URL"]
    forged = {"ok": True, "response": {"columns": ["NB_ROW"], "data": [[1]]}, "cost": {"epsilon": 0.1,
                                                                                        "delta": 1e-5}}
    async with httpx.AsyncClient(base_url=url) as http:
        wrong = await http.post("/result", json={"namespace": namespace, "pod": pod["metadata"]["name"],
                                                 "token": "guessed", "output": forged})
        assert wrong.status_code == 403
    final = await wait_for_phase(admin, namespace, "mine", "Succeeded", "Failed", settled=True)
    assert final["status"]["result"]["data"] != [[1]]
    async with httpx.AsyncClient(base_url=url) as http:
        late = await http.post("/result", json={"namespace": namespace, "pod": pod["metadata"]["name"],
                                                "token": claim_token(pod), "output": forged})
    assert late.status_code in (403, 410)  # the pod is gone, or its query has ended: nothing changes
    assert (await admin.get(DPQUERY.api_path(namespace, "mine")))["status"] == final["status"]


async def test_the_runner_gets_the_metadata_its_query_was_priced_on_whatever_changed_since(
    admin: KubeClient, system_namespace: str
) -> None:
    name = f"MOVING-{uuid.uuid4().hex[:8]}"
    metadata = demo_metadata("PENGUIN")
    spec = DatasetSpec(display_name=name, url="demo://PENGUIN", metadata=metadata.model_dump(mode="json",
                       exclude_none=True), column_order=list(metadata.columns))
    await admin.create(DATASET.api_path(system_namespace), dataset_manifest(system_namespace, name, spec))
    settings = OperatorSettings(system_namespace=system_namespace)
    datasets = Datasets(admin, system_namespace)
    launcher = Launcher(admin, settings, datasets, Snapshots(admin, system_namespace), Registry(), PodKeys())
    priced_on = await datasets.get(name)
    assert priced_on is not None
    digest = await Snapshots(admin, system_namespace).keep(priced_on.metadata)
    await admin.patch(DATASET.api_path(system_namespace, name.lower()),
                      {"spec": {"metadata": {**spec.metadata, "max_ids": 50}}})
    changed = await datasets.get(name)
    assert changed is not None and changed.metadata.max_ids == 50 != metadata.max_ids
    body = dpquery("priced", dataset=name)
    body["metadata"].update(uid="u-priced", namespace="team")
    body["status"] = {"phase": "Admitted", "metadataDigest": digest}
    runner_input = await launcher.input_for(QueryView.of(body))
    assert runner_input.dataset.metadata == metadata and runner_input.dataset.uri == "demo://PENGUIN"
