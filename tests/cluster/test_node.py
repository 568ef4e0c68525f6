"""The node itself: a real kubelet runs dpkube's images as containers under the chart's security context,
on the bridge's addresses, with cluster DNS."""

from __future__ import annotations

import json

import pytest
import yaml

from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster
from dpkube.cluster.components import NODE_NAME
from dpkube_testing.realcluster import REPO, SYNTH, get_json, kubectl, run_pod

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]
VALUES = yaml.safe_load((REPO / "charts" / "dpkube" / "values.yaml").read_text())
CHART_SECURITY = (VALUES["podSecurityContext"], VALUES["containerSecurityContext"])


def test_the_node_is_ready_with_its_bridge_address(cluster: LocalCluster) -> None:
    node = get_json(cluster, "node", NODE_NAME)
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster.network.gateway
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_an_image_runs_as_uid_10001_on_a_read_only_root(cluster: LocalCluster) -> None:
    script = ("import os\nprint('uid', os.getuid(), 'gid', os.getgid())\n"
              "try:\n    open('/opt/dpkube/probe', 'w')\nexcept OSError as e:\n    print('root:', e.strerror)\n"
              "open('/tmp/probe', 'w').write('ok')\nprint('tmp: writable')\n")
    phase, log, _ = run_pod(cluster, "default", images.CORE, ["python", "-c", script], security=CHART_SECURITY)
    assert phase == "Succeeded", log
    assert "uid 10001 gid 10001" in log
    assert "root: Read-only file system" in log
    assert "tmp: writable" in log


@pytest.mark.skipif(not SYNTH, reason="the full image is imported with DPKUBE_CLUSTER_SYNTH=1")
def test_every_library_imports_under_the_charts_security_context(cluster: LocalCluster) -> None:
    """Imports write nothing outside /tmp (matplotlib, numba and torch caches go there)."""
    script = ("from dpkube.engine.libraries import MODULES, library_module\n"
              "import torch\n"
              "for library in MODULES:\n    library_module(library)\n"
              "print('imported', len(MODULES), 'libraries, torch', torch.__version__)\n")
    phase, log, _ = run_pod(cluster, "default", images.FULL, ["python", "-c", script], security=CHART_SECURITY)
    assert phase == "Succeeded", log
    assert "imported 4 libraries" in log


def test_the_core_image_imports_every_library_but_synthetic_data_read_only(cluster: LocalCluster) -> None:
    """Every library's module (pricing included) imports; what a run needs besides, as a warm pod imports it,
    is there for all but synthetic data (its training needs torch)."""
    script = ("import json\nfrom dpkube.engine.libraries import MODULES, library_module\n"
              "found = {}\nfor library in MODULES:\n"
              "    module = library_module(library)\n"
              "    try:\n        getattr(module, 'warm_up', lambda: None)(); found[library.value] = True\n"
              "    except ImportError:\n        found[library.value] = False\n"
              "print(json.dumps(found))\n")
    phase, log, _ = run_pod(cluster, "default", images.CORE, ["python", "-c", script], security=CHART_SECURITY)
    assert phase == "Succeeded", log
    assert json.loads(log.strip().splitlines()[-1]) == {
        "smartnoise-sql": True, "opendp": True, "diffprivlib": True, "smartnoise-synth": False}


def test_pods_resolve_service_names_through_cluster_dns(cluster: LocalCluster) -> None:
    script = "import socket\nprint(socket.gethostbyname('kubernetes.default.svc.cluster.local'))\n"
    phase, log, _ = run_pod(cluster, "default", images.CORE, ["python", "-c", script], security=CHART_SECURITY)
    assert phase == "Succeeded", log
    assert log.strip() == cluster.network.service_ip(1)


def test_a_containers_log_is_read_through_the_kubelet(cluster: LocalCluster) -> None:
    """kubectl logs goes API server -> kubelet (client certificate) -> containerd."""
    phase, log, pod = run_pod(cluster, "default", images.CORE, ["python", "-c", "print('hello from a container')"],
                              security=CHART_SECURITY)
    assert phase == "Succeeded"
    assert log.strip() == "hello from a container"
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")


def test_no_image_is_pulled(cluster: LocalCluster) -> None:
    events = json.loads(kubectl(cluster, "get", "events", "-A", "-o", "json").stdout)["items"]
    assert not [e for e in events if e.get("reason") in ("Pulling", "Failed") and "pull" in e.get("message", "")]
