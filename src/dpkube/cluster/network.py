"""The cluster's network on this machine: a Linux bridge on a private /24 that only its pods and the node
use, a route that keeps the Service range on that bridge, the CNI configuration (bridge + host-local), and
the two kernel switches pods need (forwarding, iptables on bridged traffic), put back as found at the end."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dpkube.cluster.errors import ClusterError

CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
SYSCTLS = {
    # Service traffic between two pods of the bridge leaves it routed, after kube-proxy's DNAT.
    "net/ipv4/ip_forward": "1",
    # Bridged pod-to-pod packets pass iptables: kube-proxy's un-NAT and the NetworkPolicy engine need it.
    "net/bridge/bridge-nf-call-iptables": "1",
}


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def _taken() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine routes or holds an address in."""
    routes = json.loads(run_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    addresses = json.loads(run_ip("-j", "-4", "addr", "show").stdout or "[]")
    networks: list[ipaddress.IPv4Network] = []
    for route in routes:
        try:
            networks.append(ipaddress.IPv4Network(route.get("dst", ""), strict=False))
        except ValueError:
            continue  # default, broadcast, ...
    networks += [ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False)
                 for link in addresses for a in link.get("addr_info", [])]
    return networks


def free_subnets(seed: str, count: int) -> list[ipaddress.IPv4Network]:
    """`count` /24s of 10.128.0.0/9 that nothing on this machine uses, picked from `seed` (stable per seed)."""
    taken = _taken()
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % (1 << 15)
    found: list[ipaddress.IPv4Network] = []
    for offset in range(1 << 15):
        index = (start + offset) % (1 << 15)
        candidate = ipaddress.IPv4Network(f"10.{128 + (index >> 8)}.{index & 0xFF}.0/24")
        if not any(candidate.overlaps(net) for net in taken) and candidate not in found:
            found.append(candidate)
            if len(found) == count:
                return found
    raise ClusterError("no free /24 in 10.128.0.0/9 for the cluster's pods and Services")


@dataclass
class Network:
    """The bridge, its pod subnet and the Service range; `up` makes them, `down` removes them."""

    bridge: str
    pod_cidr: str
    service_cidr: str
    previous_sysctls: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        """The node's address on the bridge: kubelet's node IP, the API server's address, pods' gateway."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    def service_ip(self, index: int) -> str:
        return str(ipaddress.ip_network(self.service_cidr)[index])

    def up(self) -> None:
        run_ip("link", "add", self.bridge, "type", "bridge")
        run_ip("addr", "add", f"{self.gateway}/{ipaddress.ip_network(self.pod_cidr).prefixlen}", "dev", self.bridge)
        run_ip("link", "set", self.bridge, "up")
        # ClusterIPs stay on the bridge: without kube-proxy's rules they go nowhere else.
        run_ip("route", "add", self.service_cidr, "dev", self.bridge, "src", self.gateway)
        for name, value in SYSCTLS.items():
            path = Path("/proc/sys") / name
            if not path.exists():
                raise ClusterError(f"{path} is missing: this kernel lacks {name.split('/')[1]} support")
            self.previous_sysctls.setdefault(name, path.read_text().strip())
            path.write_text(value)

    def down(self) -> None:
        """Remove the bridge (with its routes) and put the kernel switches back; safe to repeat."""
        if run_ip("link", "show", self.bridge, check=False).returncode == 0:
            run_ip("link", "delete", self.bridge)
        for name, value in self.previous_sysctls.items():
            (Path("/proc/sys") / name).write_text(value)

    def exists(self) -> bool:
        return run_ip("link", "show", self.bridge, check=False).returncode == 0

    def cni_config(self, ipam_dir: Path) -> dict:
        """The CNI network of the pods: veths on the bridge, addresses from host-local, no masquerade."""
        return {
            "cniVersion": "1.0.0",
            "name": "dpkube",
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": self.pod_cidr, "gateway": self.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }],
        }
