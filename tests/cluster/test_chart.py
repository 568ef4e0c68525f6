"""`helm install charts/dpkube` on the real cluster: the operator and the facade as Deployments of two replicas
with one leader, queries run by a real kubelet in hardened containers, reached through the facade's Service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dpkube.client import Client, DioptraClient
from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster
from dpkube.k8s import policy
from dpkube.models.payloads import CORE_LIBRARIES
from dpkube_testing.builders import dpquery
from dpkube_testing.dioptra import workflow
from dpkube_testing.realcluster import (
    QUERIES,
    RELEASE,
    REPO,
    SYNTH,
    SYNTH_QUEUE,
    SYSTEM,
    PodWatch,
    Release,
    get_json,
    kubectl,
    leader_pod,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]
TERMINAL = {"Succeeded", "Failed", "Rejected", "TimedOut", "Cancelled"}


def component_pods(cluster: LocalCluster, component: str) -> list[dict]:
    return get_json(cluster, "pods", "-n", SYSTEM, "-l", f"app.kubernetes.io/component={component}")["items"]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def wait_for_query(cluster: LocalCluster, namespace: str, name: str, timeout: float = 240) -> dict:
    def ended() -> dict | None:
        query = get_json(cluster, "dpquery", name, "-n", namespace)
        return query if (query.get("status") or {}).get("phase") in TERMINAL else None
    return wait_until(ended, timeout, f"DPQuery {namespace}/{name} to end")


def run_query(cluster: LocalCluster, body: dict, timeout: float = 240) -> tuple[dict, dict]:
    """Create a DPQuery in the query namespace, wait for its end; the query, and its pod as last seen."""
    with PodWatch(cluster, QUERIES) as pods:
        created = kubectl(cluster, "create", "-n", QUERIES, "-f", "-", input=json.dumps(body))
        assert created.returncode == 0, created.stderr
        query = wait_for_query(cluster, QUERIES, body["metadata"]["name"], timeout)
        time.sleep(1)
    (pod,) = pods.owned_by(query["metadata"]["uid"])
    return query, pod


def test_operator_and_facade_run_two_replicas_each(release: Release) -> None:
    cluster = release.cluster
    for component in ("operator", "api"):
        deployment = get_json(cluster, "deployment", f"{RELEASE}-{component}", "-n", SYSTEM)
        assert deployment["spec"]["replicas"] == 2
        pods = component_pods(cluster, component)
        assert [p["status"]["phase"] for p in pods] == ["Running", "Running"]
    assert all(ready(p) for p in component_pods(cluster, "api"))


def test_one_operator_leads_and_only_the_leader_is_ready(release: Release) -> None:
    """Only the leader serves claims, so only the leader is in the claims Service."""
    leader = leader_pod(release.cluster)["metadata"]["name"]
    pods = {p["metadata"]["name"]: ready(p) for p in component_pods(release.cluster, "operator")}
    assert pods == {name: name == leader for name in pods}


def test_a_lomas_query_succeeds_through_the_facades_service(release: Release) -> None:
    with Client(release.facade_url, token=release.token, dataset_name="PENGUIN") as client:
        before = client.get_remaining_budget()["remaining_epsilon"]
        answer = client.smartnoise_sql.query("SELECT COUNT(*) AS NB_ROW FROM df", epsilon=0.1, delta=1e-5,
                                             mechanisms={"count": "gaussian"})
        assert int(answer["query_response"]["NB_ROW"][0]) > 0
        assert answer["spent_epsilon"] == pytest.approx(0.1)
        assert client.get_remaining_budget()["remaining_epsilon"] == pytest.approx(before - 0.1)


def test_a_dioptra_job_finishes(release: Release, tmp_path: Path) -> None:
    archive = tmp_path / "workflow.tar.gz"
    archive.write_bytes(workflow())
    with DioptraClient(release.facade_url, token=release.token) as dioptra:
        experiment = dioptra.register_experiment(f"cluster_{uuid.uuid4().hex[:6]}")
        job = dioptra.submit_job(archive, experiment["name"], "penguin_count", "-P epsilon=0.1", queue="default")
        assert "jobId" in job, job
        finished = wait_until(lambda: (j := dioptra.get_job_by_id(job["jobId"]))["status"] in ("finished", "failed")
                              and j, 240, "the Dioptra job to end")
    assert finished["status"] == "finished", finished


def test_a_kubectl_applied_dpquery_succeeds_in_a_real_pod(release: Release) -> None:
    cluster = release.cluster
    home = f"home-{uuid.uuid4().hex[:6]}"
    assert kubectl(cluster, "create", "namespace", home).returncode == 0
    binding = kubectl(cluster, "create", "-f", "-", input=json.dumps(policy.user_binding(home, "alice")))
    assert binding.returncode == 0, binding.stderr
    subprocess.run([sys.executable, "-m", "dpkube.cli", "budget", "grant", "alice", "PENGUIN", "--epsilon", "10",
                    "--delta", "0.005", "--kubeconfig", str(cluster.kubeconfig)], check=True, capture_output=True)
    applied = kubectl(cluster, "apply", "-n", home, "-f", "examples/01-experiment.yaml",
                      "-f", "examples/03-dpquery-smartnoise-sql.yaml", user="alice")
    assert applied.returncode == 0, applied.stderr
    query = wait_for_query(cluster, home, "penguin-smartnoise-sql")
    assert query["status"]["phase"] == "Succeeded", query["status"]
    assert query["status"]["spent"]["epsilon"] == pytest.approx(0.1)


def test_query_pods_are_containers_under_the_charts_security_context(release: Release) -> None:
    """The result came from the pod's container over the claim channel; the operator then deletes the pod at
    once, so the container is last seen running or ended, however its process was stopped."""
    query, pod = run_query(release.cluster, dpquery(f"hardened-{uuid.uuid4().hex[:6]}", user="e2e"))
    assert query["status"]["phase"] == "Succeeded", query["status"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == images.CORE
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert set(pod["status"]["containerStatuses"][0]["state"]) <= {"running", "terminated"}


def test_a_warm_pod_is_a_non_root_process_without_capabilities_under_seccomp(release: Release) -> None:
    """Seen from this machine: the container's process, its user, capabilities, no_new_privs and seccomp mode."""
    cluster = release.cluster
    queue = f"warm-{uuid.uuid4().hex[:6]}"
    manifest = {"apiVersion": "dpkube.io/v1alpha1", "kind": "Queue", "metadata": {"name": queue, "namespace": SYSTEM},
                "spec": {"warmPods": 1, "warmLibraries": list(CORE_LIBRARIES)}}
    assert kubectl(cluster, "create", "-f", "-", input=json.dumps(manifest)).returncode == 0
    try:
        def running_warm_pod() -> dict | None:
            pods = get_json(cluster, "pods", "-n", QUERIES, "-l", f"dpkube.io/warm-pool={queue}")["items"]
            return next((p for p in pods if p["status"].get("phase") == "Running"), None)

        pod = wait_until(running_warm_pod, 180, "a warm pod to run")
        container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
        assert cluster.containerd is not None
        tasks = cluster.containerd.ctr("tasks", "list").stdout.splitlines()
        (pid,) = [int(line.split()[1]) for line in tasks if line.startswith(container_id)]
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        uid = str(pod["spec"]["securityContext"]["runAsUser"])
        assert uid != "0" and status["Uid"].split()[:2] == [uid, uid]
        assert int(status["CapEff"].strip(), 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"  # filter mode: the runtime's default profile
    finally:
        kubectl(cluster, "delete", "queue", queue, "-n", SYSTEM, "--wait=false")
        # The operator keeps pools of existing queues only: a deleted queue's warm pods are the deleter's to remove.
        kubectl(cluster, "delete", "pods", "-n", QUERIES, "-l", f"dpkube.io/warm-pool={queue}", "--wait=false")


@pytest.mark.skipif(not SYNTH, reason="the full image is imported with DPKUBE_CLUSTER_SYNTH=1")
def test_a_synthetic_data_query_runs_in_its_queues_image(release: Release) -> None:
    body = dpquery(f"synth-{uuid.uuid4().hex[:6]}", user="e2e", library="smartnoise-synth", queue=SYNTH_QUEUE)
    query, pod = run_query(release.cluster, body, timeout=280)
    assert query["status"]["phase"] == "Succeeded", query["status"]
    assert pod["spec"]["containers"][0]["image"] == images.FULL


def test_the_end_to_end_suite_passes_against_the_facades_service(release: Release) -> None:
    """tests/e2e over HTTP, from this machine to the Service's ClusterIP (kube-proxy's rules)."""
    started = time.monotonic()
    env = {**os.environ, "DPKUBE_E2E_URL": release.facade_url, "DPKUBE_E2E_TOKEN": release.token,
           "DPKUBE_E2E_USER": release.user, "DPKUBE_E2E_ADMIN_TOKEN": release.admin_token}
    suite = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "-m", "e2e", "-q", "-p", "no:cacheprovider"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert suite.returncode == 0, suite.stdout[-8000:] + suite.stderr[-2000:]
    print(f"e2e suite against {release.facade_url}: {suite.stdout.strip().splitlines()[-1]} "
          f"({time.monotonic() - started:.0f}s)")
