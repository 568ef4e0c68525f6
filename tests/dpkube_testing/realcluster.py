"""The chart on a real cluster (tests/cluster): helm, kubectl and pods run there to look at it from inside."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpkube.cluster.cluster import LocalCluster
from dpkube.controlplane import binaries
from dpkube.controlplane.local import ADMIN

REPO = Path(__file__).resolve().parents[2]
RELEASE = "dpkube"
SYSTEM = "dpkube-system"
QUERIES = "dpkube"
SYNTH = os.environ.get("DPKUBE_CLUSTER_SYNTH") == "1"
"""Also import the full image (torch): the operator and facade run it, and a `synth` queue's pods."""
SYNTH_QUEUE = "synth"


def helm(cluster: LocalCluster, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    assert cluster.workdir is not None
    home = cluster.workdir / "helm"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    return subprocess.run([str(binaries.binary("helm")), "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def kubectl(cluster: LocalCluster, *args: str, user: str = ADMIN, input: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real kubectl as the admin, or as another static user of the control plane."""
    assert cluster.plane is not None and cluster.workdir is not None
    config = cluster.workdir / f"kubeconfig-{user}"
    if not config.exists():
        cluster.plane.write_kubeconfig(config, user)
    return subprocess.run([str(binaries.binary("kubectl")), "--kubeconfig", str(config), *args],
                          capture_output=True, text=True, cwd=REPO, input=input, timeout=timeout)


def get_json(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    result = kubectl(cluster, "get", *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_until(check, timeout: float, what: str, interval: float = 1.0):
    """Poll `check()` until it returns something truthy; fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {value!r})")


@dataclass
class Release:
    """The chart installed on the cluster, with what the tests need to call the facade."""

    cluster: LocalCluster
    values: list[str]
    facade_url: str
    user: str
    token: str
    admin_token: str


def run_pod(cluster: LocalCluster, namespace: str, image: str, argv: list[str], *, labels: dict[str, str] | None = None,
            security: dict[str, dict] | None = None, timeout: float = 180,
            tmp: bool = True) -> tuple[str, str, dict[str, Any]]:
    """Run one pod to its end; return its phase, its log and the pod as the API server last saw it."""
    name = f"probe-{uuid.uuid4().hex[:8]}"
    pod_security, container_security = security or ({}, {})
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": pod_security,
            "containers": [{"name": "probe", "image": image, "imagePullPolicy": "Never", "command": argv,
                            "securityContext": container_security,
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}] if tmp else []}],
            "volumes": [{"name": "tmp", "emptyDir": {}}] if tmp else [],
        },
    }
    created = kubectl(cluster, "create", "-f", "-", input=json.dumps(pod))
    assert created.returncode == 0, created.stderr

    def ended() -> dict[str, Any] | None:
        current = get_json(cluster, "pod", name, "-n", namespace)
        return current if current["status"].get("phase") in ("Succeeded", "Failed") else None

    final = wait_until(ended, timeout, f"pod {namespace}/{name} to end")
    log = kubectl(cluster, "logs", "-n", namespace, name)
    kubectl(cluster, "delete", "pod", "-n", namespace, name, "--wait=false")
    return final["status"]["phase"], log.stdout + log.stderr, final


def leader_pod(cluster: LocalCluster) -> dict[str, Any]:
    """The operator pod holding the Lease (its identity is the pod's name, with a suffix of its process)."""
    holder = get_json(cluster, "lease", f"{RELEASE}-operator", "-n", SYSTEM)["spec"]["holderIdentity"]
    pods = get_json(cluster, "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=operator")["items"]
    (pod,) = [p for p in pods if holder == p["metadata"]["name"] or holder.startswith(p["metadata"]["name"] + "_")]
    return pod


class PodWatch:
    """Every pod of a namespace as last seen while watched (`kubectl get pods -w`), deleted ones included:
    a query's pod may be gone by the time the query has ended."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        assert cluster.plane is not None and cluster.workdir is not None
        self.pods: dict[str, dict[str, Any]] = {}
        self._proc = subprocess.Popen(
            [str(binaries.binary("kubectl")), "--kubeconfig", str(cluster.kubeconfig), "get", "pods", "-n", namespace,
             "--watch", "--output-watch-events", "-o", "json"], stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self._proc.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                continue
            buffer = buffer.lstrip()[end:]
            pod = event["object"]
            self.pods[pod["metadata"]["uid"]] = pod

    def owned_by(self, uid: str) -> list[dict[str, Any]]:
        return [p for p in self.pods.values()
                if any(o["uid"] == uid for o in p["metadata"].get("ownerReferences", []))]

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)

    def __enter__(self) -> PodWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
