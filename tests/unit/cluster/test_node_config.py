"""What the cluster's processes are told: each listens on the bridge or on loopback only, and nothing that
cannot be pulled back is ever evicted or garbage-collected."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from dpkube.cluster.components import Node
from dpkube.cluster.containerd import Containerd
from dpkube.cluster.network import Network
from dpkube.cluster.systemimages import PAUSE_IMAGE

NETWORK = Network("dpktest0", "10.200.1.0/24", "10.200.2.0/24")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    home = tmp_path / "node"
    home.mkdir()
    return Node(home, "https://10.200.1.1:6443", tmp_path / "ca.crt", NETWORK.gateway, NETWORK.pod_cidr,
                NETWORK.service_cidr, NETWORK.service_ip(10), "unix:///run/test.sock", 10250)


def flag(argv: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return value


def test_the_node_is_the_first_address_of_the_pod_subnet() -> None:
    assert (NETWORK.gateway, NETWORK.service_ip(1), NETWORK.service_ip(10)) == ("10.200.1.1", "10.200.2.1",
                                                                                 "10.200.2.10")


def test_pods_get_bridge_addresses_from_host_local_without_masquerade(tmp_path: Path) -> None:
    (plugin,) = NETWORK.cni_config(tmp_path)["plugins"]
    assert (plugin["type"], plugin["bridge"], plugin["ipMasq"]) == ("bridge", "dpktest0", False)
    assert plugin["ipam"]["ranges"] == [[{"subnet": "10.200.1.0/24", "gateway": "10.200.1.1"}]]
    assert plugin["ipam"]["dataDir"] == str(tmp_path)


def test_containerd_keeps_its_state_home_and_lets_runc_keep_oom_scores(tmp_path: Path) -> None:
    runtime = Containerd(tmp_path / "containerd")
    config = tomllib.loads(runtime.write_config().read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == PAUSE_IMAGE
    assert cri["containerd"]["runtimes"]["runc"]["options"]["BinaryName"] == "runc"
    assert cri["stream_server_address"] == "127.0.0.1"
    for path in (config["root"], config["state"], config["grpc"]["address"], cri["cni"]["conf_dir"]):
        assert Path(path).is_relative_to(tmp_path)


def test_the_kubelet_serves_only_the_api_server_on_the_bridge(node: Node) -> None:
    config = yaml.safe_load(node.kubelet_config().read_text())
    assert (config["address"], config["readOnlyPort"], config["healthzBindAddress"]) == ("10.200.1.1", 0,
                                                                                          "127.0.0.1")
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["x509"]["clientCAFile"] == str(node.ca_file)
    assert config["clusterDNS"] == ["10.200.2.10"]


def test_the_kubelet_never_evicts_or_collects_images_it_cannot_pull_again(node: Node) -> None:
    config = yaml.safe_load(node.kubelet_config().read_text())
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["evictionHard"]["imagefs.available"] == "1%"


def test_the_kubelet_writes_its_files_under_the_clusters_folder(node: Node) -> None:
    config = yaml.safe_load(node.kubelet_config().read_text())
    argv = node.kubelet(node.home / "kubelet.kubeconfig")
    for path in (config["podLogsDir"], config["volumePluginDir"], flag(argv, "root-dir"), flag(argv, "cert-dir")):
        assert Path(path).is_relative_to(node.home)


def test_kube_proxy_opens_node_ports_on_the_bridge_only_and_leaves_conntrack_alone(node: Node) -> None:
    argv = node.kube_proxy(node.home / "kube-proxy.kubeconfig")
    assert flag(argv, "nodeport-addresses") == "10.200.1.1/32"
    assert flag(argv, "iptables-localhost-nodeports") == "false"
    assert flag(argv, "conntrack-max-per-core") == "0"
    assert flag(argv, "metrics-bind-address").startswith("127.0.0.1:")


def test_kube_router_runs_its_network_policy_controller_alone(node: Node) -> None:
    argv = node.kube_router(node.home / "admin.kubeconfig")
    assert (flag(argv, "run-firewall"), flag(argv, "run-router"), flag(argv, "run-service-proxy")) == (
        "true", "false", "false")
    assert flag(argv, "service-cluster-ip-range") == "10.200.2.0/24"


def test_the_cni_config_is_json(tmp_path: Path) -> None:
    assert json.loads(json.dumps(NETWORK.cni_config(tmp_path)))["cniVersion"] == "1.0.0"
