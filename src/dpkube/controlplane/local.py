"""A real etcd + kube-apiserver on loopback, for tests and `make dev` (the envtest approach: no kubelet).

Authentication is a static token file, so callers can act as the admin or as distinct users; RBAC
authorises. Everything listens on 127.0.0.1 only (a real cluster moves the API server to its bridge's
address, where pods reach it), and both processes are stopped by their PIDs.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dpkube.controlplane import binaries, pki
from dpkube.controlplane.processes import ChildProcess

ADMIN = "admin"
DEFAULT_USERS = ("alice", "bob", "carol")


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the tail of the failing process's log."""


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_CHOSEN_PORT = 10000
NODE_PORTS = range(30000, 32768)  # Kubernetes' default Service node-port range: kube-proxy may claim these


def ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections and `bind(0)`."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def unclaimed_by_kernel(ephemeral: range) -> range:
    """The wider of the stretch below the ephemeral range (short of the node ports) and the one above it.

    The upper one, which may hold node ports, is taken only where the ephemeral range leaves less room below."""
    below = range(LOWEST_CHOSEN_PORT, max(min(ephemeral.start, NODE_PORTS.start), LOWEST_CHOSEN_PORT))
    above = range(max(ephemeral.stop, LOWEST_CHOSEN_PORT), 65536)
    return below if len(below) >= len(above) else above


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port on `address` that nothing listens on right now, outside the ephemeral range.

    A port from `bind(0)` is ephemeral: any outgoing connection may take it before the child process that
    was handed it binds it (a kube-controller-manager once failed so). Outside the range only an explicit bind can.
    """
    candidates = unclaimed_by_kernel(ephemeral_ports())
    for _ in range(200 if candidates else 0):
        port = candidates.start + secrets.randbelow(len(candidates))
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
            return port
    raise ControlPlaneError(f"no free TCP port on {address} in {candidates.start}-{candidates.stop - 1}")


@dataclass
class Identity:
    """One user the API server knows, with the bearer token that authenticates it."""

    name: str
    token: str
    groups: tuple[str, ...] = ()


@dataclass
class LocalControlPlane:
    """etcd and kube-apiserver as child processes of this one, in `workdir`."""

    workdir: Path
    users: tuple[str, ...] = DEFAULT_USERS
    identities: dict[str, Identity] = field(default_factory=dict)
    url: str = ""
    kubeconfig: Path = Path()
    ca_file: Path = Path()
    audit: bool = False
    """Log every request's user, verb, object and answer to `audit_log` (for tests of who may do what)."""
    address: str = "127.0.0.1"
    """Where the API server listens and what it advertises (etcd stays on loopback)."""
    service_cidr: str = "10.0.0.0/24"
    components: tuple[Identity, ...] = ()
    """More identities with groups of their own (a real cluster's kubelet, scheduler, ...)."""
    authorization_modes: str = "RBAC"
    extra_args: tuple[str, ...] = ()
    keys: pki.Pki | None = None
    _procs: dict[str, ChildProcess] = field(default_factory=dict)

    def start(self, timeout: float = 90.0) -> LocalControlPlane:
        """Start both processes and return once the API server answers /readyz."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        etcd_bin = binaries.binary("etcd")
        apiserver_bin = binaries.binary("kube-apiserver")
        service_ip = str(next(ipaddress.ip_network(self.service_cidr).hosts()))
        keys = self.keys = pki.generate(
            self.workdir / "pki", addresses=(self.address, service_ip),
            names=("kubernetes", "kubernetes.default", "kubernetes.default.svc.cluster.local"))
        self.ca_file = keys.ca_cert
        self.identities = {ADMIN: Identity(ADMIN, secrets.token_hex(16), ("system:masters",))}
        for user in self.users:
            self.identities[user] = Identity(user, secrets.token_hex(16), ("dpkube:users",))
        for component in self.components:
            self.identities[component.name] = component
        token_file = self.workdir / "tokens.csv"
        token_file.write_text(
            "".join(
                f'{i.token},{i.name},{i.name},"{",".join(i.groups)}"\n' for i in self.identities.values()
            )
        )
        token_file.chmod(0o600)

        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn("etcd", [
            str(etcd_bin),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])
        api_port = free_port(self.address)
        self.url = f"https://{self.address}:{api_port}"
        self._spawn("kube-apiserver", [
            str(apiserver_bin),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={api_port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--tls-cert-file={keys.serving_cert}",
            f"--tls-private-key-file={keys.serving_key}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={keys.sa_public_key}",
            f"--service-account-signing-key-file={keys.sa_private_key}",
            f"--kubelet-client-certificate={keys.kubelet_client_cert}",
            f"--kubelet-client-key={keys.kubelet_client_key}",
            f"--token-auth-file={token_file}",
            f"--authorization-mode={self.authorization_modes}",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--event-ttl=1h",
            *self._audit_flags(),
            *self.extra_args,
        ])
        self.kubeconfig = self.write_kubeconfig(self.workdir / "kubeconfig", ADMIN)
        self._wait_ready(timeout)
        return self

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _audit_flags(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["RequestReceived"], "rules": [{"level": "Metadata"}],
        }))
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                "--audit-log-mode=blocking", "--audit-log-maxsize=0"]

    def audit_events(self) -> list[dict[str, Any]]:
        """Every audited request so far (empty unless started with `audit=True`)."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs[name] = ChildProcess(name, argv, self.workdir / f"{name}.log").start()

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token(ADMIN)}"}
        )
        context = self._ssl_context()
        while time.monotonic() < deadline:
            for name, child in self._procs.items():
                if not child.running():
                    tail = child.log_tail()
                    self.stop()
                    raise ControlPlaneError(f"{name} exited:\n{tail}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
                pass
            time.sleep(0.1)
        tail = self._procs["kube-apiserver"].log_tail()
        self.stop()
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f}s:\n{tail}")

    def token(self, user: str) -> str:
        """The bearer token of a user this control plane authenticates."""
        return self.identities[user].token

    def write_kubeconfig(self, path: Path, user: str, token: str | None = None) -> Path:
        """A kubeconfig that talks to this API server as `user` (or as whoever `token` authenticates)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "dpkube-local", "cluster": {
                "server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": token or self.token(user)}}],
            "contexts": [{"name": f"{user}@dpkube-local", "context": {
                "cluster": "dpkube-local", "user": user}}],
            "current-context": f"{user}@dpkube-local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def peak_memory_bytes(self) -> dict[str, int]:
        """Peak resident memory of each process so far (VmHWM), for the record."""
        return {name: peak for name, child in self._procs.items() if (peak := child.peak_resident_bytes())}

    def stop(self) -> None:
        """Stop both processes by PID: SIGTERM, then SIGKILL after a grace period."""
        for name in ("kube-apiserver", "etcd"):
            child = self._procs.pop(name, None)
            if child is not None:
                child.stop()

    def __enter__(self) -> LocalControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
