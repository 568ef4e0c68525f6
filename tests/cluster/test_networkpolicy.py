"""NetworkPolicies enforced by a real engine (kube-router's firewall): connections probed from inside pods, held
to what the policies in the cluster say (whoever wrote them: the chart, the operator), and to the rules a query
pod must always live by: DNS and the operator's claim port open; the API server, the facade and other pods closed."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass

import pytest

from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster
from dpkube_testing.builders import dpquery
from dpkube_testing.netpolicy import Endpoint, allows
from dpkube_testing.realcluster import (
    QUERIES,
    RELEASE,
    SYSTEM,
    PodWatch,
    Release,
    get_json,
    kubectl,
    leader_pod,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]
SECURITY = ({"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}})
LISTENER_PORT = 9000
CLAIM_PORT, HEALTH_PORT = 8081, 8080
CLOSED_TO_QUERY_PODS = ("api-server", "api-server-service", "operator-health", "facade", "other-pod")
PROBE = """
import json, socket, sys
results = {}
for name, host, port, proto in json.loads(sys.argv[1]):
    try:
        if proto == "DNS":
            socket.gethostbyname(host)
        else:
            socket.create_connection((host, port), timeout=4).close()
        results[name] = "open"
    except OSError as e:
        results[name] = type(e).__name__
print(json.dumps(results))
"""


def programmed(address: str) -> bool:
    """Whether the policy engine has put the pod at `address` behind its firewall chain (kube-router's)."""
    rules = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    return any(f"-s {address}/32" in line and "-j KUBE-POD-FW-" in line for line in rules.splitlines())


def probe(cluster: LocalCluster, namespace: str, labels: dict[str, str], targets: list[tuple]) -> dict[str, str]:
    """Open each target from a pod with `labels` in `namespace`: 'open', or why not. A pod that policies select
    probes once the engine has its rules in place: until then (a few seconds, printed) nothing holds it back."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": {"securityContext": SECURITY[0], "automountServiceAccountToken": False, "containers": [{
               "name": "probe", "image": images.CORE, "imagePullPolicy": "Never",
               "command": ["python", "-c", "import time; time.sleep(600)"], "securityContext": SECURITY[1]}]}}
    assert kubectl(cluster, "create", "-f", "-", input=json.dumps(pod)).returncode == 0
    try:
        running = wait_until(lambda: (q := get_json(cluster, "pod", name, "-n", namespace))["status"].get("podIP")
                             and q["status"].get("phase") == "Running" and q, 120, "the probe pod to run",
                             interval=0.2)
        started = time.monotonic()
        if labels:
            wait_until(lambda: programmed(running["status"]["podIP"]), 120, "kube-router to program the probe pod",
                       interval=0.2)
            print(f"policy engine programmed {namespace}/{name} {time.monotonic() - started:.1f}s after it ran")
        result = kubectl(cluster, "exec", "-n", namespace, name, "--", "python", "-c", PROBE, json.dumps(targets))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        kubectl(cluster, "delete", "pod", name, "-n", namespace, "--grace-period=0", "--force", "--wait=false")


def pod_endpoint(cluster: LocalCluster, pod: dict) -> Endpoint:
    namespace = get_json(cluster, "namespace", pod["metadata"]["namespace"])
    return Endpoint(pod["status"]["podIP"], pod["metadata"].get("labels") or {}, pod["metadata"]["namespace"],
                    namespace["metadata"].get("labels") or {})


def running_pod(cluster: LocalCluster, namespace: str, selector: str) -> dict | None:
    return next((p for p in get_json(cluster, "pods", "-n", namespace, "-l", selector)["items"]
                 if p["status"].get("phase") == "Running" and p["status"].get("podIP")), None)


def one_pod(cluster: LocalCluster, namespace: str, selector: str) -> dict:
    pod = running_pod(cluster, namespace, selector)
    assert pod is not None, f"no running pod {selector} in {namespace}"
    return pod


@pytest.fixture(scope="module")
def listener(release: Release) -> dict:
    """A pod of the query namespace that answers on LISTENER_PORT: the 'other pod' a query must not reach."""
    cluster = release.cluster
    name = f"listener-{uuid.uuid4().hex[:6]}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": QUERIES,
                                                           "labels": {"app": "listener"}},
           "spec": {"securityContext": SECURITY[0], "containers": [{
               "name": "listener", "image": images.CORE, "imagePullPolicy": "Never",
               "command": ["python", "-m", "http.server", str(LISTENER_PORT), "--directory", "/tmp"],
               "securityContext": SECURITY[1], "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
               "volumes": [{"name": "tmp", "emptyDir": {}}]}}
    assert kubectl(cluster, "create", "-f", "-", input=json.dumps(pod)).returncode == 0
    yield wait_until(lambda: running_pod(cluster, QUERIES, "app=listener"), 120, "the listener pod")
    kubectl(cluster, "delete", "pod", name, "-n", QUERIES, "--wait=false")


@pytest.fixture(scope="module")
def query_labels(release: Release) -> dict[str, str]:
    """The labels the operator gives query pods, read off a real query's pod."""
    cluster = release.cluster
    name = f"labels-{uuid.uuid4().hex[:6]}"
    with PodWatch(cluster, QUERIES) as pods:
        assert kubectl(cluster, "create", "-n", QUERIES, "-f", "-",
                       input=json.dumps(dpquery(name, user=release.user))).returncode == 0
        query = wait_until(lambda: (q := get_json(cluster, "dpquery", name, "-n", QUERIES)).get("status", {}).get(
            "phase") in ("Succeeded", "Failed") and q, 240, "a query to end")
    (pod,) = pods.owned_by(query["metadata"]["uid"])
    return pod["metadata"]["labels"]


@pytest.fixture(scope="module")
def policies(release: Release, query_labels: dict[str, str]) -> list[dict]:
    return get_json(release.cluster, "networkpolicies", "-A")["items"]


@dataclass(frozen=True)
class Target:
    """A destination as the policies see it (the pod or address behind any Service, its port) and as it is dialled."""

    endpoint: Endpoint
    port: int
    address: str
    dial_port: int
    protocol: str = "TCP"


def targets(cluster: LocalCluster, listener: dict) -> dict[str, Target]:
    api = get_json(cluster, "endpoints", "kubernetes", "-n", "default")["subsets"][0]
    api_service = get_json(cluster, "service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    dns = one_pod(cluster, "kube-system", "k8s-app=kube-dns")
    operator = leader_pod(cluster)
    leader = pod_endpoint(cluster, operator)
    claims = get_json(cluster, "service", f"{RELEASE}-operator", "-n", SYSTEM)["spec"]["clusterIP"]
    facade = one_pod(cluster, SYSTEM, "app.kubernetes.io/component=api")
    api_ip, api_port = api["addresses"][0]["ip"], api["ports"][0]["port"]
    operator_ip = operator["status"]["podIP"]
    return {
        "api-server": Target(Endpoint(api_ip), api_port, api_ip, api_port),
        "api-server-service": Target(Endpoint(api_ip), api_port, api_service, 443),
        "dns": Target(pod_endpoint(cluster, dns), 53, dns["status"]["podIP"], 53),
        "claim-port": Target(leader, CLAIM_PORT, operator_ip, CLAIM_PORT),
        "claim-service": Target(leader, CLAIM_PORT, claims, CLAIM_PORT),
        "operator-health": Target(leader, HEALTH_PORT, operator_ip, HEALTH_PORT),
        "facade": Target(pod_endpoint(cluster, facade), 8000, facade["status"]["podIP"], 8000),
        "other-pod": Target(pod_endpoint(cluster, listener), LISTENER_PORT, listener["status"]["podIP"],
                            LISTENER_PORT),
    }


def dialled(found: dict[str, Target]) -> list[tuple[str, str, int, str]]:
    return [(name, t.address, t.dial_port, t.protocol) for name, t in found.items()]


def test_a_query_pod_reaches_dns_and_the_claim_port_and_nothing_else(
        release: Release, listener: dict, query_labels: dict[str, str], policies: list[dict]) -> None:
    """The operator's policy as a real engine enforces it: the claim port by the operator's pod address and by the
    Service the runner is given, DNS; not the API server (query pods have no token and no business there), the
    operator's other ports, the facade or another pod."""
    cluster = release.cluster
    found = targets(cluster, listener)
    source = Endpoint("0.0.0.0", query_labels, QUERIES, get_json(cluster, "namespace", QUERIES)["metadata"]["labels"])
    seen = probe(cluster, QUERIES, query_labels,
                 [*dialled(found), ("dns-lookup", "kubernetes.default.svc.cluster.local", 0, "DNS")])
    said = {name: allows(policies, source, t.endpoint, t.port, t.protocol) for name, t in found.items()}
    assert {name: seen[name] == "open" for name in found} == said, seen
    assert [name for name, allowed in said.items() if allowed] == ["dns", "claim-port", "claim-service"], said
    assert seen["dns-lookup"] == "open"


def test_a_pod_without_policy_reaches_the_same_pods(release: Release, listener: dict) -> None:
    """The control: what the query pod could not open is open to a pod in a namespace without policies."""
    found = targets(release.cluster, listener)
    seen = probe(release.cluster, "default", {}, [d for d in dialled(found) if d[0] in CLOSED_TO_QUERY_PODS])
    assert seen == dict.fromkeys(CLOSED_TO_QUERY_PODS, "open")


def test_the_facade_accepts_traffic_on_its_port_only(release: Release) -> None:
    """A second listener inside the facade's pod (an ephemeral container) answers the node, but not other pods."""
    cluster = release.cluster
    facade = one_pod(cluster, SYSTEM, "app.kubernetes.io/component=api")
    name = facade["metadata"]["name"]
    debug = kubectl(cluster, "debug", "-n", SYSTEM, name, f"--image={images.CORE}", "--image-pull-policy=Never",
                    "--profile=restricted", "-c", f"listener-{uuid.uuid4().hex[:4]}", "--",
                    "python", "-m", "http.server", str(LISTENER_PORT), "--directory", "/tmp", "--bind", "0.0.0.0")
    assert debug.returncode == 0, debug.stderr
    address = facade["status"]["podIP"]
    wait_until(lambda: probe_from_node(address, LISTENER_PORT), 120, "the extra listener in the facade's pod")
    policies = get_json(cluster, "networkpolicies", "-A")["items"]
    caller = Endpoint("0.0.0.0", {}, "default", get_json(cluster, "namespace", "default")["metadata"]["labels"])
    target = pod_endpoint(cluster, facade)
    assert allows(policies, caller, target, 8000) and not allows(policies, caller, target, LISTENER_PORT)
    seen = probe(cluster, "default", {}, [("http", address, 8000, "TCP"), ("other", address, LISTENER_PORT, "TCP")])
    assert seen["http"] == "open"
    assert seen["other"] != "open", seen


def probe_from_node(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
        return True
    except OSError:
        return False
