"""NetworkPolicies enforced by a real engine (kube-router's firewall): connections probed from inside pods, held
to what the policies in the cluster say (whoever wrote them: the chart, the operator), and to the rules a query
pod must always live by: DNS and the operator's claim port open, the facade and other pods closed."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid

import pytest

from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster
from dpkube_testing.builders import dpquery
from dpkube_testing.netpolicy import Endpoint, allows
from dpkube_testing.realcluster import (
    QUERIES,
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


def targets(cluster: LocalCluster, listener: dict) -> dict[str, tuple[Endpoint, int, str, str]]:
    """Destinations: name -> (endpoint, port, protocol, address to dial)."""
    api = get_json(cluster, "endpoints", "kubernetes", "-n", "default")["subsets"][0]
    dns = one_pod(cluster, "kube-system", "k8s-app=kube-dns")
    leader = leader_pod(cluster)
    facade = one_pod(cluster, SYSTEM, "app.kubernetes.io/component=api")
    api_ip, api_port = api["addresses"][0]["ip"], api["ports"][0]["port"]
    return {
        "api-server": (Endpoint(api_ip), api_port, "TCP", api_ip),
        "dns": (pod_endpoint(cluster, dns), 53, "TCP", dns["status"]["podIP"]),
        "claim-port": (pod_endpoint(cluster, leader), 8081, "TCP", leader["status"]["podIP"]),
        "facade": (pod_endpoint(cluster, facade), 8000, "TCP", facade["status"]["podIP"]),
        "other-pod": (pod_endpoint(cluster, listener), LISTENER_PORT, "TCP", listener["status"]["podIP"]),
    }


def test_a_query_pod_reaches_only_what_the_policies_allow(release: Release, listener: dict,
                                                         query_labels: dict[str, str], policies: list[dict]) -> None:
    cluster = release.cluster
    found = targets(cluster, listener)
    source = Endpoint("0.0.0.0", query_labels, QUERIES, get_json(cluster, "namespace", QUERIES)["metadata"]["labels"])
    seen = probe(cluster, QUERIES, query_labels, [
        *[(name, address, port, proto) for name, (_, port, proto, address) in found.items()],
        ("dns-lookup", "kubernetes.default.svc.cluster.local", 0, "DNS")])
    said = {name: allows(policies, source, endpoint, port, proto) for name, (endpoint, port, proto, _) in found.items()}
    assert {name: seen[name] == "open" for name in found} == said, seen
    assert said["dns"] and said["claim-port"], "a query pod must reach DNS and the claim port"
    assert not said["facade"] and not said["other-pod"], "a query pod must not reach the facade or other pods"
    assert seen["dns-lookup"] == "open"


def test_a_pod_without_policy_reaches_the_same_pods(release: Release, listener: dict) -> None:
    """The control: what the query pod could not open is open to a pod in a namespace without policies."""
    found = targets(release.cluster, listener)
    seen = probe(release.cluster, "default", {}, [(name, address, port, proto) for name, (_, port, proto, address)
                                                 in found.items() if name in ("facade", "other-pod")])
    assert seen == {"facade": "open", "other-pod": "open"}


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
