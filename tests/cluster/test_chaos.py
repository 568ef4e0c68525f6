"""30 queries on the real cluster while things break: the leading operator's pod is force-deleted, a query's
container is killed, the kubelet restarts. Every query still ends, each had exactly one pod, and the grant
has spent exactly what the queries report they spent."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict

import pytest

from dpkube.cluster.cluster import LocalCluster
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import ApiError, KubeClient, core_path
from dpkube.models.cost import Cost
from dpkube.models.kinds import DPQUERY
from dpkube_testing.builders import dpquery
from dpkube_testing.realcluster import QUERIES, SYSTEM, Release, kubectl, leader_pod

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]
QUERY_COUNT = 30
TERMINAL = {"Succeeded", "Failed", "Rejected", "TimedOut", "Cancelled"}


class PodLog:
    """Every pod the API server ever had in a namespace while watched, by the query that owns it."""

    def __init__(self) -> None:
        self.by_query: dict[str, set[str]] = defaultdict(set)

    async def follow(self, client: KubeClient, namespace: str) -> None:
        version = (await client.list(core_path("pods", namespace)))["metadata"]["resourceVersion"]
        for pod in (await client.list(core_path("pods", namespace)))["items"]:
            self.record(pod)
        while True:
            try:
                async for event in client.watch(core_path("pods", namespace), resource_version=version):
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.record(event["object"])
            except ApiError:
                version = (await client.list(core_path("pods", namespace)))["metadata"]["resourceVersion"]

    def record(self, pod: dict) -> None:
        for owner in pod["metadata"].get("ownerReferences", []):
            if owner.get("kind") == "DPQuery":
                self.by_query[owner["uid"]].add(pod["metadata"]["uid"])


async def running_query_pod(client: KubeClient, uids: set[str]) -> dict:
    while True:
        for pod in (await client.list(core_path("pods", QUERIES)))["items"]:
            owners = {o["uid"] for o in pod["metadata"].get("ownerReferences", [])}
            statuses = pod["status"].get("containerStatuses") or []
            if owners & uids and statuses and "running" in statuses[0].get("state", {}):
                return pod
        await asyncio.sleep(0.2)


async def chaos(cluster: LocalCluster, client: KubeClient, uids: set[str], done: list[str]) -> None:
    leader = leader_pod(cluster)["metadata"]["name"]
    deleted = kubectl(cluster, "delete", "pod", leader, "-n", SYSTEM, "--grace-period=0", "--force")
    assert deleted.returncode == 0, deleted.stderr
    done.append(f"force-deleted the leader {leader}")
    victim = await asyncio.wait_for(running_query_pod(client, uids), timeout=240)
    container = victim["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    assert cluster.containerd is not None
    cluster.containerd.kill_container(container)
    done.append(f"killed the container of {victim['metadata']['name']}")
    await asyncio.sleep(3)
    await asyncio.to_thread(cluster.restart, "kubelet")
    done.append("restarted the kubelet")


async def test_every_query_ends_with_one_pod_and_the_grant_spends_what_they_report(
        release: Release, admin: KubeClient) -> None:
    cluster = release.cluster
    user = f"chaos-{uuid.uuid4().hex[:6]}"
    budgets = Budgets(admin, SYSTEM)
    await budgets.grant(user, "PENGUIN", 10.0, 0.005)
    pods = PodLog()
    watcher = asyncio.create_task(pods.follow(admin, QUERIES))
    names = [f"{user}-{i:02d}" for i in range(QUERY_COUNT)]
    uids: set[str] = set()
    done: list[str] = []
    chaos_task = None
    for index, name in enumerate(names):
        created = await admin.create(DPQUERY.api_path(QUERIES), dpquery(name, user=user))
        uids.add(created["metadata"]["uid"])
        if index == 4:
            chaos_task = asyncio.create_task(chaos(cluster, admin, uids, done))
        await asyncio.sleep(0.3)

    async def all_ended() -> list[dict]:
        while True:
            queries = [await admin.get(DPQUERY.api_path(QUERIES, name)) for name in names]
            if all((q.get("status") or {}).get("phase") in TERMINAL for q in queries):
                return queries
            await asyncio.sleep(1)

    try:
        assert chaos_task is not None
        await asyncio.wait_for(chaos_task, timeout=600)
        queries = await asyncio.wait_for(all_ended(), timeout=900)
        await asyncio.sleep(2)  # the watch catches the last pod events
    finally:
        watcher.cancel()
    assert len(done) == 3, done
    phases = {q["metadata"]["name"]: q["status"]["phase"] for q in queries}
    pods_per_query = {q["metadata"]["name"]: len(pods.by_query[q["metadata"]["uid"]]) for q in queries}
    odd = {q["metadata"]["name"]: q["status"] for q in queries if pods_per_query[q["metadata"]["name"]] != 1}
    assert pods_per_query == {name: 1 for name in names}, json.dumps({"phases": phases, "odd": odd}, default=str)
    reported = Cost.total(Cost.model_validate(q["status"]["spent"]) for q in queries if q["status"].get("spent"))
    grant = await budgets.find(user, "PENGUIN")
    assert grant.ledger.spent.epsilon == pytest.approx(reported.epsilon), phases
    assert grant.ledger.spent.delta == pytest.approx(reported.delta), phases
    assert reported.epsilon > 0
    print(f"chaos: {'; '.join(done)}; phases {sorted(phases.values())}")
