"""The end of the release and of the cluster: `helm upgrade` to a changed value, `helm uninstall` leaving only the
kept query namespace, then `down` leaving nothing on this machine. They run after every other test of the tier."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from dpkube.cluster.cluster import LocalCluster, leftovers, state_file
from dpkube.k8s.pods import QUERY_UID_LABEL, WARM_POOL_LABEL
from dpkube_testing.realcluster import QUERIES, RELEASE, SYSTEM, Release, get_json, helm, kubectl, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]


@pytest.mark.last(1)
def test_helm_upgrade_to_more_facade_replicas_rolls_them_out(release: Release) -> None:
    cluster = release.cluster
    upgraded = helm(cluster, "upgrade", RELEASE, "charts/dpkube", "--namespace", SYSTEM, *release.values,
                    "--set", "api.replicas=3", "--wait", "--timeout", "5m")
    assert upgraded.returncode == 0, upgraded.stderr
    deployment = get_json(cluster, "deployment", f"{RELEASE}-api", "-n", SYSTEM)
    assert (deployment["spec"]["replicas"], deployment["status"].get("readyReplicas")) == (3, 3)
    history = helm(cluster, "history", RELEASE, "--namespace", SYSTEM, "-o", "yaml")
    assert [r["status"] for r in yaml.safe_load(history.stdout)] == ["superseded", "deployed"]


@pytest.mark.last(2)
def test_helm_uninstall_leaves_only_the_kept_query_namespace(release: Release) -> None:
    cluster = release.cluster
    manifest = helm(cluster, "get", "manifest", RELEASE, "--namespace", SYSTEM)
    assert manifest.returncode == 0, manifest.stderr
    uninstalled = helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM, "--wait", "--timeout", "5m")
    assert uninstalled.returncode == 0, uninstalled.stderr
    left = kubectl(cluster, "get", "-f", "-", "--ignore-not-found", "-o", "name", input=manifest.stdout)
    assert left.stdout.split() == [f"namespace/{QUERIES}"], left.stderr
    deadline = time.monotonic() + 120
    while (pods := pod_names(cluster, SYSTEM) + query_pods(cluster)) and time.monotonic() < deadline:
        time.sleep(1)
    assert pods == [], "pods left"
    # Known gap: the default Queue's idle warm pods outlive the operator and the Queue (nothing owns them
    # across namespaces); the README tells the admin to delete them after an uninstall, as done here.
    idle = kubectl(cluster, "delete", "pods", "-n", QUERIES, "-l", f"{WARM_POOL_LABEL},!{QUERY_UID_LABEL}",
                   "--grace-period=0", "--force")
    assert idle.returncode == 0, idle.stderr
    assert wait_until(lambda: not pod_names(cluster, QUERIES), 120, "the idle warm pods to go")


def pod_names(cluster: LocalCluster, namespace: str) -> list[str]:
    return [f"{p['metadata']['name']} {p['metadata'].get('labels')} {p['status'].get('phase')}"
            for p in get_json(cluster, "pods", "-n", namespace)["items"]]


def query_pods(cluster: LocalCluster) -> list[str]:
    """Pods in the query namespace other than idle warm pods."""
    return [p for p in pod_names(cluster, QUERIES) if WARM_POOL_LABEL not in p or QUERY_UID_LABEL in p]


@pytest.mark.last(3)
def test_down_leaves_no_process_bridge_mount_rule_or_folder(cluster: LocalCluster) -> None:
    state = cluster.state
    assert state is not None and state.network
    workdir = Path(state.workdir)
    pids = [p["pid"] for p in state.processes]
    cluster.stop()
    assert leftovers(state) == []
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert f" {state.network['bridge']}:" not in links
    assert str(workdir) not in Path("/proc/self/mountinfo").read_text()
    assert not workdir.exists()
    assert not state_file().exists()
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert not [line for line in rules.splitlines() if "KUBE-" in line], rules
    sets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout.split()
    assert not [name for name in sets if name.startswith(("KUBE-", "kube-router"))]
