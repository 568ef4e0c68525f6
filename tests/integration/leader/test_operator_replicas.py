"""Two `python -m dpkube.operator` replicas with leader election against the real API server.

Each test's replicas serve only its fresh namespace (also their system namespace, holding their Lease),
so the session's cluster-wide operator never meets their lease, and they never touch its queries.
The assertions are on the lease, the replicas' endpoints, logs and exit codes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dpkube.controlplane.local import LocalControlPlane, free_port
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.client import KubeClient, NotFound

LEASE, RENEW, RETRY = 2, 1.5, 0.3
STARTED = "dpkube operator started"
"""Logged by the startup handler: kopf runs, with the scheduler and the claim server."""


@dataclass
class Replica:
    identity: str
    process: ChildProcess
    claim_port: int
    health_port: int

    def log(self) -> str:
        return self.process.log.read_text(errors="replace") if self.process.log.exists() else ""


StartReplica = Callable[[str], Replica]


@pytest.fixture
def lease_name() -> str:
    return f"operator-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def start_replica(control_plane: LocalControlPlane, platform_env: dict[str, str], namespace: str,
                  lease_name: str, tmp_path: Path) -> Iterator[StartReplica]:
    """Start operator replicas that elect a leader over the test's lease and serve only its namespace."""
    replicas: list[Replica] = []

    def start(identity: str) -> Replica:
        claim_port, health_port = free_port(), free_port()
        env = {
            **platform_env,
            "DPKUBE_SYSTEM_NAMESPACE": namespace,
            "DPKUBE_NAMESPACES": json.dumps([namespace]),
            "DPKUBE_WARM_NAMESPACES": "[]",
            "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim_port}",
            "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim_port}",
            "DPKUBE_HEALTH_LISTEN": f"127.0.0.1:{health_port}",
            "DPKUBE_LEADER_ELECTION": "true",
            "DPKUBE_LEASE_NAME": lease_name,
            "DPKUBE_LEASE_DURATION_SECONDS": str(LEASE),
            "DPKUBE_RENEW_DEADLINE_SECONDS": str(RENEW),
            "DPKUBE_RETRY_PERIOD_SECONDS": str(RETRY),
            "DPKUBE_IDENTITY": identity,
        }
        process = ChildProcess(identity, [sys.executable, "-m", "dpkube.operator"], tmp_path / f"{identity}.log",
                               env).start()
        replicas.append(Replica(identity, process, claim_port, health_port))
        return replicas[-1]

    yield start
    for replica in replicas:
        replica.process.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll `check` until it holds; return how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


async def holder(admin: KubeClient, namespace: str, lease_name: str) -> str | None:
    try:
        lease = await admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}")
    except NotFound:
        return None
    return lease["spec"].get("holderIdentity")


async def status(port: int, path: str) -> int | None:
    """The HTTP status of GET 127.0.0.1:port/path, or None when nothing listens there."""
    async with httpx.AsyncClient() as http:
        try:
            return (await http.get(f"http://127.0.0.1:{port}{path}", timeout=2)).status_code
        except httpx.ConnectError:
            return None


@pytest.fixture
async def leader_and_standby(start_replica: StartReplica, admin: KubeClient, namespace: str,
                             lease_name: str) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replica a leading (its operator started), replica b started after it and standing by."""
    a = start_replica("replica-a")
    await eventually(lambda: has_logged(a, STARTED), 60, f"a leads and starts the operator\n{a.log()}")
    b = start_replica("replica-b")
    await eventually(lambda: has_logged(b, "held by replica-a; replica-b stands by"), 30,
                     f"b stands by\n{b.log()}")
    yield a, b


async def has_logged(replica: Replica, text: str) -> bool:
    return text in replica.log()


async def test_only_the_lease_holder_runs_the_operator_while_both_replicas_are_alive(
        leader_and_standby: tuple[Replica, Replica], admin: KubeClient, namespace: str, lease_name: str) -> None:
    a, b = leader_and_standby
    await asyncio.sleep(LEASE * 2)
    assert await holder(admin, namespace, lease_name) == "replica-a"
    assert STARTED not in b.log()
    assert (await status(a.claim_port, "/healthz"), await status(b.claim_port, "/healthz")) == (200, None)
    assert (await status(a.health_port, "/livez"), await status(b.health_port, "/livez")) == (200, 200)


async def test_a_standby_stopped_by_sigterm_exits_0_and_leaves_the_lease_to_the_leader(
        leader_and_standby: tuple[Replica, Replica], admin: KubeClient, namespace: str, lease_name: str) -> None:
    a, b = leader_and_standby
    assert b.process.proc is not None
    b.process.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(b.process.proc.wait, 10) == 0
    await asyncio.sleep(LEASE)
    assert await holder(admin, namespace, lease_name) == "replica-a"
    assert a.process.running()


async def test_a_standby_takes_over_once_a_killed_leaders_lease_expires(
        leader_and_standby: tuple[Replica, Replica], admin: KubeClient, namespace: str, lease_name: str) -> None:
    a, b = leader_and_standby
    a.process.kill()
    takeover = await eventually(lambda: holder_is(admin, namespace, lease_name, "replica-b"), LEASE + 5,
                                f"b takes the lease\n{b.log()}")
    print(f"\nSIGKILL of the leader -> standby holds the lease: {takeover:.2f}s (lease {LEASE}s, retry {RETRY}s)")
    assert takeover >= LEASE - RETRY * 1.5
    await eventually(lambda: has_logged(b, STARTED), 30, f"b starts the operator\n{b.log()}")
    assert "acquired lease" in b.log() and "replica-b: this replica leads" in b.log()
    assert await status(b.claim_port, "/healthz") == 200


async def test_a_leader_stopped_by_sigterm_releases_its_lease_to_the_standby_and_exits_0(
        leader_and_standby: tuple[Replica, Replica], admin: KubeClient, namespace: str, lease_name: str) -> None:
    a, b = leader_and_standby
    assert a.process.proc is not None
    a.process.proc.send_signal(signal.SIGTERM)
    handover = await eventually(lambda: holder_is(admin, namespace, lease_name, "replica-b"), LEASE + 5,
                                f"b takes the lease\n{a.log()}\n{b.log()}")
    print(f"\nSIGTERM of the leader -> standby holds the lease: {handover:.2f}s (lease {LEASE}s, retry {RETRY}s)")
    assert await asyncio.to_thread(a.process.proc.wait, 10) == 0
    assert "released lease" in a.log()
    assert handover < LEASE
    await eventually(lambda: has_logged(b, STARTED), 30, f"b starts the operator\n{b.log()}")


async def test_a_leader_whose_lease_is_taken_stops_and_exits_1(
        start_replica: StartReplica, admin: KubeClient, namespace: str, lease_name: str) -> None:
    a = start_replica("replica-a")
    await eventually(lambda: has_logged(a, STARTED), 60, f"a leads and starts the operator\n{a.log()}")
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}"
    lease = await admin.get(path)
    await admin.replace(path, {**lease, "spec": {**lease["spec"], "holderIdentity": "intruder"}})
    taken_at = time.monotonic()
    assert a.process.proc is not None
    exit_code = await asyncio.to_thread(a.process.proc.wait, 10)
    print(f"\nlease taken -> former leader exited: {time.monotonic() - taken_at:.2f}s")
    assert exit_code == 1
    assert "no longer leads" in a.log()
    assert await holder(admin, namespace, lease_name) == "intruder"


async def holder_is(admin: KubeClient, namespace: str, lease_name: str, identity: str) -> bool:
    return await holder(admin, namespace, lease_name) == identity
