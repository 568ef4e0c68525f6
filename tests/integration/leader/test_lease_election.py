"""Two candidates for one Lease on the real API server: one leads, and the lease changes hands only when
the leader lets go, stops renewing, or is overwritten."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from dpkube.controlplane.local import free_port
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.operator.leader import JITTER, LeaderElector

LEASE, RENEW, RETRY = 2, 1.5, 0.3
SLACK = 0.5
"""Scheduling and API latency allowed on top of the election's own timings."""

MakeElector = Callable[[str], LeaderElector]


@pytest.fixture
async def lease_name() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def elector(kube_config: KubeConfig, namespace: str, lease_name: str) -> AsyncIterator[MakeElector]:
    """Candidates for one lease in the test's namespace, each with a client of its own."""
    clients: list[KubeClient] = []

    def make(identity: str) -> LeaderElector:
        clients.append(KubeClient(kube_config))
        return LeaderElector(clients[-1], name=lease_name, namespace=namespace, identity=identity,
                             lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY)

    yield make
    for client in clients:
        await client.close()


async def lease_spec(admin: KubeClient, namespace: str, lease_name: str) -> dict:
    return (await admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}"))["spec"]


async def standing_by_behind(candidate: LeaderElector, leader: LeaderElector) -> asyncio.Task[None]:
    """Start `candidate`'s acquisition and return once it has seen `leader` holding the lease."""
    task = asyncio.create_task(candidate.acquire())
    async with asyncio.timeout(5):
        while candidate.holder != leader.identity:
            await asyncio.sleep(0.02)
    return task


async def test_of_two_candidates_exactly_one_leads(elector: MakeElector, admin: KubeClient, namespace: str,
                                                   lease_name: str) -> None:
    a, b = elector("a"), elector("b")
    tasks = {asyncio.create_task(a.acquire()), asyncio.create_task(b.acquire())}
    done, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    await asyncio.sleep(LEASE / 2)
    winner = a if a.leading else b
    assert [a.leading, b.leading].count(True) == 1
    assert len(pending) == 1 and not pending.pop().done()
    assert (await lease_spec(admin, namespace, lease_name))["holderIdentity"] == winner.identity
    for task in tasks:
        task.cancel()


async def test_a_released_lease_passes_to_the_standby_within_a_retry_period(
        elector: MakeElector, admin: KubeClient, namespace: str, lease_name: str) -> None:
    a, b = elector("a"), elector("b")
    await a.acquire()
    b_acquiring = await standing_by_behind(b, a)
    released_at = time.monotonic()
    assert await a.release()
    await asyncio.wait_for(b_acquiring, RETRY * (1 + JITTER) + SLACK)
    handover = time.monotonic() - released_at
    spec = await lease_spec(admin, namespace, lease_name)
    print(f"\nrelease -> standby leads: {handover:.2f}s")
    assert (b.leading, a.leading) == (True, False)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


async def written_behind_its_back(admin: KubeClient, namespace: str, lease_name: str, **spec: str) -> None:
    """The lease changed by a write its holder never saw the answer of."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}"
    stored = await admin.get(path)
    await admin.replace(path, {**stored, "spec": {**stored["spec"], **spec}})


async def test_a_renewal_that_landed_unseen_does_not_stop_the_release(
        elector: MakeElector, admin: KubeClient, namespace: str, lease_name: str) -> None:
    a = elector("a")
    await a.acquire()
    await written_behind_its_back(admin, namespace, lease_name, renewTime="2026-01-01T00:00:00.000000Z")
    assert await a.release()
    assert (await lease_spec(admin, namespace, lease_name))["holderIdentity"] in ("", None)


async def test_a_lease_taken_over_meanwhile_is_not_released(
        elector: MakeElector, admin: KubeClient, namespace: str, lease_name: str) -> None:
    a = elector("a")
    await a.acquire()
    await written_behind_its_back(admin, namespace, lease_name, holderIdentity="b")
    assert not await a.release()
    assert (await lease_spec(admin, namespace, lease_name))["holderIdentity"] == "b"


async def test_a_lease_that_stops_being_renewed_is_taken_over_only_after_its_duration(
        elector: MakeElector, admin: KubeClient, namespace: str, lease_name: str) -> None:
    a, b = elector("a"), elector("b")
    await a.acquire()
    last_renewal = time.monotonic()
    await asyncio.wait_for(b.acquire(), LEASE + 2 * RETRY * (1 + JITTER) + SLACK)
    takeover = time.monotonic() - last_renewal
    print(f"\nlast renewal -> standby leads: {takeover:.2f}s")
    assert takeover >= LEASE
    assert (await lease_spec(admin, namespace, lease_name))["holderIdentity"] == "b"


async def test_a_leader_whose_lease_is_overwritten_stops_leading_within_the_renew_deadline(
        elector: MakeElector, admin: KubeClient, namespace: str, lease_name: str) -> None:
    a = elector("a")
    await a.acquire()
    holding = asyncio.create_task(a.hold())
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}"
    lease = await admin.get(path)
    await admin.replace(path, {**lease, "spec": {**lease["spec"], "holderIdentity": "intruder"}})
    overwritten_at = time.monotonic()
    await asyncio.wait_for(holding, RENEW)
    print(f"\noverwrite -> former leader stops leading: {time.monotonic() - overwritten_at:.2f}s")
    assert not a.leading
    assert (await lease_spec(admin, namespace, lease_name))["holderIdentity"] == "intruder"


async def test_a_leader_cut_off_from_the_api_server_stops_leading_before_its_lease_expires(
        elector: MakeElector, kube_config: KubeConfig) -> None:
    a = elector("a")
    await a.acquire()
    holding = asyncio.create_task(a.hold())
    await asyncio.sleep(RETRY * 2)
    async with KubeClient(KubeConfig(server=f"https://127.0.0.1:{free_port()}", insecure=True)) as unreachable:
        a.client = unreachable
        await asyncio.wait_for(holding, RENEW + SLACK)
    lost_at = time.monotonic()
    assert not a.leading
    assert RENEW <= lost_at - a.renewed_at < LEASE


async def test_a_standby_is_alive_while_it_waits(elector: MakeElector) -> None:
    a, b = elector("a"), elector("b")
    await a.acquire()
    b_acquiring = await standing_by_behind(b, a)
    await asyncio.sleep(RETRY * 3)
    assert b.alive() and not b.leading
    b_acquiring.cancel()
