"""The Node object this agent stands for: registration, Ready heartbeats and the node Lease."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from decimal import Decimal
from pathlib import Path
from typing import Any

from dpkube.k8s.client import ApiError, Conflict, Forbidden, KubeClient, NotFound, Unreachable, core_path
from dpkube.k8s.timestamps import rfc3339, rfc3339_micro
from dpkube.nodeagent.status import RUNTIME

LOCAL_NODE_LABEL = "dpkube.io/local-node"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
NODE_IP = "127.0.0.1"
MAX_PODS = 110

log = logging.getLogger(__name__)


def memory_bytes() -> int:
    """MemTotal from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemTotal")


class NodeRegistration:
    """Creates or adopts the Node, then keeps it Ready (status heartbeat and Lease renewal)."""

    def __init__(self, client: KubeClient, name: str, *, heartbeat_seconds: float = 10.0):
        self.client = client
        self.name = name
        self.heartbeat_seconds = heartbeat_seconds
        self.cpu = os.cpu_count() or 1
        self.memory = memory_bytes()
        self.labels = {
            LOCAL_NODE_LABEL: "true", "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux", "kubernetes.io/arch": _arch(),
        }
        self._leases = True
        self._ready_since = rfc3339()

    @property
    def allocatable(self) -> tuple[Decimal, Decimal]:
        """CPU cores and memory bytes, for resourceFieldRef defaults."""
        return Decimal(self.cpu), Decimal(self.memory)

    async def register(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": self.labels},
                "spec": {}, "status": self._status()}
        try:
            await self.client.create(core_path("nodes"), node)
            log.info("registered node %s", self.name)
        except Conflict as error:
            if not error.already_exists:
                raise
            await self.client.patch(core_path("nodes", name=self.name), {"metadata": {"labels": self.labels}})
            log.info("node %s already registered, adopting it", self.name)
        await self.heartbeat()

    async def heartbeat(self) -> None:
        await self.client.patch(core_path("nodes", name=self.name) + "/status", {"status": self._status()},
                                kind="strategic")
        if self._leases:
            await self._renew_lease()

    async def keep_ready(self) -> None:
        """Heartbeat until cancelled; a failed beat is logged and retried at the next one."""
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.heartbeat()
            except (ApiError, Unreachable, OSError) as error:
                log.warning("node heartbeat failed: %s", error)

    async def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": rfc3339_micro()}
        try:
            await self.client.patch(path, {"spec": spec})
            return
        except NotFound:
            pass
        node = await self.client.get(core_path("nodes", name=self.name))
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
                     "apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node["metadata"]["uid"]}]},
                 "spec": spec}
        try:
            await self.client.create(path.rsplit("/", 1)[0], lease)
        except NotFound:
            await self._create_lease_namespace()
            if self._leases:
                await self.client.create(path.rsplit("/", 1)[0], lease)

    async def _create_lease_namespace(self) -> None:
        try:
            await self.client.create(core_path("namespaces"), {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}})
        except Forbidden:
            log.info("no %s namespace and no right to create it: heartbeats without a Lease", LEASE_NAMESPACE)
            self._leases = False

    def _status(self) -> dict[str, Any]:
        now = rfc3339()
        resources = {"cpu": str(self.cpu), "memory": f"{self.memory // 1024}Ki", "pods": str(MAX_PODS)}

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": self._ready_since}

        uname = platform.uname()
        return {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                condition("Ready", "True", "KubeletReady", "dpkube node agent is posting ready status"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "sufficient PID available"),
            ],
            "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _machine_id(), "systemUUID": "", "bootID": _boot_id(),
                "kernelVersion": uname.release, "osImage": f"{uname.system} (local processes)",
                "containerRuntimeVersion": f"{RUNTIME}://0.1.0", "kubeletVersion": "dpkube-nodeagent/0.1.0",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": _arch(),
            },
        }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _machine_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return ""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
