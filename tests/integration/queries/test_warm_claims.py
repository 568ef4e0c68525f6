"""A warm pod's claim against the real API server: the claim's JSON patch labels a pod only while its labels are
still an unclaimed pod's and it is not being deleted, so no two queries can take one pod."""

from __future__ import annotations

import pytest

from dpkube.k8s.client import Invalid, KubeClient, core_path
from dpkube.k8s.pods import QUERY_UID_LABEL, WARM_POOL_LABEL
from dpkube.operator.warm import claim_patch

UNCLAIMED = {WARM_POOL_LABEL: "default"}


def query(namespace: str, uid: str) -> dict:
    return {"metadata": {"namespace": namespace, "name": f"query-{uid}", "uid": uid}}


async def idle_pod(admin: KubeClient, namespace: str, finalizers: list[str] | None = None) -> str:
    """An unclaimed warm pod, as its pool made it (no node runs it: only its labels matter here)."""
    await admin.create(core_path("serviceaccounts", namespace),
                       {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}})
    await admin.create(core_path("pods", namespace), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "warm", "labels": dict(UNCLAIMED), "finalizers": finalizers or []},
        "spec": {"serviceAccountName": "runner", "automountServiceAccountToken": False,
                 "containers": [{"name": "runner", "image": "dpkube-runner"}]},
    })
    return core_path("pods", namespace, "warm")


async def test_a_claim_labels_an_unclaimed_pod_with_its_query(admin: KubeClient, namespace: str) -> None:
    pod = await idle_pod(admin, namespace)
    await admin.patch(pod, claim_patch(UNCLAIMED, query(namespace, "u-1")), kind="json")
    meta = (await admin.get(pod))["metadata"]
    assert meta["labels"][QUERY_UID_LABEL] == "u-1" and meta["labels"][WARM_POOL_LABEL] == "default"
    assert [owner["uid"] for owner in meta["ownerReferences"]] == ["u-1"]


async def test_a_second_claim_on_the_same_pod_is_refused(admin: KubeClient, namespace: str) -> None:
    pod = await idle_pod(admin, namespace)
    await admin.patch(pod, claim_patch(UNCLAIMED, query(namespace, "u-1")), kind="json")
    with pytest.raises(Invalid):
        await admin.patch(pod, claim_patch(UNCLAIMED, query(namespace, "u-2")), kind="json")
    assert (await admin.get(pod))["metadata"]["labels"][QUERY_UID_LABEL] == "u-1"


async def test_a_claim_on_a_pod_being_deleted_is_refused(admin: KubeClient, namespace: str) -> None:
    pod = await idle_pod(admin, namespace, finalizers=["dpkube.io/test-holds-it"])
    await admin.delete(pod, grace_seconds=30)
    with pytest.raises(Invalid):
        await admin.patch(pod, claim_patch(UNCLAIMED, query(namespace, "u-1")), kind="json")
    assert QUERY_UID_LABEL not in (await admin.get(pod))["metadata"]["labels"]
