"""The command lines and configuration files of the node's Kubernetes processes. Each listens on the
bridge's address or on 127.0.0.1 only, and authenticates with an identity of its own from the API
server's token file: bootstrap RBAC already binds the controller manager, the scheduler and kube-proxy;
the kubelet is a node (the Node authorizer); kube-router, which has no bootstrap role, acts as the admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from dpkube.controlplane import binaries
from dpkube.controlplane.local import Identity, free_port

NODE_NAME = "dpkube-node"
CLUSTER_DOMAIN = "cluster.local"


def identities() -> dict[str, Identity]:
    """One static-token identity per component (the keys are the components' names)."""
    return {
        "kubelet": Identity(f"system:node:{NODE_NAME}", secrets.token_hex(16), ("system:nodes",)),
        "kube-controller-manager": Identity("system:kube-controller-manager", secrets.token_hex(16)),
        "kube-scheduler": Identity("system:kube-scheduler", secrets.token_hex(16)),
        "kube-proxy": Identity("system:kube-proxy", secrets.token_hex(16)),
    }


@dataclass(frozen=True)
class Node:
    """What the node's processes share: where things are, and the addresses of this cluster."""

    home: Path
    api_url: str
    ca_file: Path
    node_ip: str
    pod_cidr: str
    service_cidr: str
    dns_ip: str
    runtime_endpoint: str
    kubelet_port: int

    def kubeconfig(self, name: str, token: str) -> Path:
        path = self.home / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": self.api_url,
                                                       "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
            "current-context": name,
        }))
        path.chmod(0o600)
        return path

    def controller_manager(self, kubeconfig: Path, sa_key: Path) -> list[str]:
        return [
            str(binaries.binary("kube-controller-manager")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.home / 'controller-manager'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={self.ca_file}",  # the kube-root-ca.crt ConfigMap that every pod mounts
            "--allocate-node-cidrs=true",  # the node's spec.podCIDR, which kube-router reads
            f"--cluster-cidr={self.pod_cidr}",
            f"--node-cidr-mask-size={self.pod_cidr.rsplit('/', 1)[1]}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--profiling=false",
        ]

    def scheduler(self, kubeconfig: Path) -> list[str]:
        return [
            str(binaries.binary("kube-scheduler")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def kubelet_config(self) -> Path:
        """Containers under cgroupfs on cgroup v1, no swap check, API-server-only access to the kubelet's API
        (client certificates of the cluster's CA), and no eviction or image GC: nothing can be pulled back."""
        root = self.home / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(self.ca_file)}},
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "failCgroupV1": False,
            "containerRuntimeEndpoint": self.runtime_endpoint,
            "imageServiceEndpoint": self.runtime_endpoint,
            "clusterDNS": [self.dns_ip],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "",
            "podLogsDir": str(root / "pod-logs"),
            "volumePluginDir": str(root / "volume-plugins"),
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "registerNode": True,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "maxPods": 110,
            "syncFrequency": "10s",
            "fileCheckFrequency": "0s",
            "shutdownGracePeriod": "0s",
            "localStorageCapacityIsolation": True,
        }
        path = root / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def kubelet(self, kubeconfig: Path) -> list[str]:
        root = self.home / "kubelet"
        return [
            str(binaries.binary("kubelet")),
            f"--config={self.kubelet_config()}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={root / 'root'}",
            f"--cert-dir={root / 'pki'}",
            f"--node-ip={self.node_ip}",
            f"--hostname-override={NODE_NAME}",
            "--v=1",
        ]

    def kube_proxy(self, kubeconfig: Path) -> list[str]:
        """iptables mode; NodePorts only on the bridge's address; conntrack sysctls left as they are."""
        return [
            str(binaries.binary("kube-proxy")),
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            "--proxy-mode=iptables",
            f"--cluster-cidr={self.pod_cidr}",
            f"--nodeport-addresses={self.node_ip}/32",
            "--iptables-localhost-nodeports=false",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--healthz-bind-address=127.0.0.1:{free_port()}",
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--v=1",
        ]

    def kube_router(self, kubeconfig: Path) -> list[str]:
        """Only the NetworkPolicy controller: no routing (one node), no service proxy (kube-proxy's job)."""
        return [
            str(binaries.binary("kube-router")),
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--enable-ipv4=true",
            "--enable-ipv6=false",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--health-port=0",
            "--metrics-port=0",
            "--iptables-sync-period=30s",
            "--v=1",
        ]
