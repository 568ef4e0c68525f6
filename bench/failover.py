"""How long the operator is leaderless when its leader stops, with the production election timings.

The Helm chart runs operator replicas with leader election over a coordination.k8s.io/v1 Lease (lease
15 s, renew deadline 10 s, retry 2 s: OperatorSettings' defaults, set explicitly here). While no replica
holds the lease, no DPQuery is scheduled, so the handover time is the platform's unavailability on an
upgrade (SIGTERM) or a crash (SIGKILL). Starts its own control plane (etcd, kube-apiserver), the node
agent and two `python -m dpkube.operator` replicas in a temporary folder, and measures over N rounds:
  - SIGTERM of the leader -> the standby holds the Lease. The leader releases the lease on its way out,
    once kopf has stopped, and the standby takes it at its next retry, at most one retry interval
    (2 s plus up to 20% jitter) later.
  - SIGKILL of the leader -> the standby holds the Lease. Nothing is released, so the standby waits for
    the lease to expire: one lease duration counted from when it last saw a renewal, which may precede
    the kill by up to one renewal interval, then rounded up to its next retry: about 13 s to 20 s, so
    the ratio to the lease duration may be a little under 1.
  - a DPQuery created right after that SIGKILL: kill -> Succeeded, against the same query's
    create -> Succeeded under a stable leader (the takeover plus the new leader's start).
Before each signal it waits a random part of one standby retry interval, so the signal falls at a
random phase of the renew and retry cycles (a signal right after the standby was seen standing by,
that is right after its read, would bias every round the same way). The Lease is read with the admin
client every 20 ms. Each stopped leader is replaced by a new standby, so every round starts with one
leader and one standby. It prints a table with ratios.
Usage: python -m bench.failover [--rounds 3] [--no-query] (the default rounds: $BENCH_FAILOVER_ROUNDS or 3)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.operator import run_one

from dpkube.controlplane.local import LocalControlPlane, free_port
from dpkube.controlplane.platform import QUERY_NAMESPACE, SYSTEM_NAMESPACE
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, KubeConfig, NotFound
from dpkube.k8s.install import install
from dpkube.operator.leader import JITTER, LEASE_API
from dpkube.operator.settings import OperatorSettings

USER = "alice"
STARTED = "dpkube operator started"
"""Logged by the operator's startup handler once kopf, the scheduler and the claim server run."""
POLL = 0.02
TIMINGS = {name: OperatorSettings.model_fields[name].default for name in
           ("lease_name", "lease_duration_seconds", "renew_deadline_seconds", "retry_period_seconds")}
LEASE_PATH = f"{LEASE_API}/namespaces/{SYSTEM_NAMESPACE}/leases/{TIMINGS['lease_name']}"


class Replicas:
    """Operator replicas with leader election, each with its own claim port and log; stopped by PID."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env
        self.started: list[ChildProcess] = []

    def start(self) -> ChildProcess:
        identity = f"replica-{len(self.started)}"
        claim_port = free_port()
        env = {**self.env, "DPKUBE_LEADER_ELECTION": "true", "DPKUBE_IDENTITY": identity,
               "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim_port}", "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim_port}",
               **{f"DPKUBE_{name.upper()}": str(value) for name, value in TIMINGS.items()}}
        process = ChildProcess(identity, [sys.executable, "-m", "dpkube.operator"],
                               self.workdir / f"{identity}.log", env).start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """Newest first: those are standbys, so the leader, stopped last, hands its lease to no one."""
        for process in reversed(self.started):
            process.stop()


def logged(process: ChildProcess, text: str) -> bool:
    return process.log.exists() and text in process.log.read_text(errors="replace")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str,
                     processes: list[ChildProcess]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(POLL)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in processes)
    raise RuntimeError(f"not within {timeout:.0f}s: {what}\n{logs}")


async def holder(client: KubeClient) -> str | None:
    try:
        return (await client.get(LEASE_PATH))["spec"].get("holderIdentity")
    except NotFound:
        return None


async def until_holder(client: KubeClient, identity: str, since: float) -> float:
    """Seconds from `since` (perf_counter) until the Lease names `identity`, polled every 20 ms."""
    deadline = time.perf_counter() + 3 * TIMINGS["lease_duration_seconds"]
    while time.perf_counter() < deadline:
        if await holder(client) == identity:
            return time.perf_counter() - since
        await asyncio.sleep(POLL)
    raise RuntimeError(f"{identity} did not take the lease; it is held by {await holder(client)!r}")


async def leads(process: ChildProcess, others: list[ChildProcess]) -> None:
    """Wait until `process` runs the operator (its startup handler ran)."""
    await eventually(lambda: asyncio.to_thread(logged, process, STARTED), 60, f"{process.name} leads",
                     [process, *others])


async def stands_by(process: ChildProcess, leader: ChildProcess) -> None:
    """Wait until `process` has read the Lease and found `leader` holding it."""
    await eventually(lambda: asyncio.to_thread(logged, process, f"held by {leader.name}; {process.name} stands by"),
                     60, f"{process.name} stands by", [process, leader])


async def random_phase() -> None:
    """Sleep for a random part of one standby retry interval (the retry period plus its jitter)."""
    await asyncio.sleep(random.uniform(0, TIMINGS["retry_period_seconds"] * (1 + JITTER)))


async def measure(plane: LocalControlPlane, replicas: Replicas, rounds: int, with_query: bool) -> dict[str, list]:
    results: dict[str, list] = {"term": [], "kill": [], "stable": [], "after_kill": [], "term_exit": []}
    async with KubeClient(KubeConfig.from_kubeconfig(plane.kubeconfig)) as client:
        await install(client, SYSTEM_NAMESPACE, [QUERY_NAMESPACE], demo=True)
        await Budgets(client, SYSTEM_NAMESPACE).grant(USER, "PENGUIN", epsilon=1e6, delta=0.5)
        leader = replicas.start()
        await leads(leader, [])
        standby = replicas.start()
        await stands_by(standby, leader)
        if with_query:
            await run_one(client, "warmup", USER)
        for n in range(rounds):
            if with_query:
                results["stable"].append(await run_one(client, f"stable-{n}", USER))
            assert leader.proc is not None
            await random_phase()
            stopped_at = time.perf_counter()
            leader.proc.send_signal(signal.SIGTERM)
            results["term"].append(await until_holder(client, standby.name, stopped_at))
            results["term_exit"].append(await asyncio.to_thread(leader.proc.wait, 30))
            leader, standby = standby, replicas.start()
            await leads(leader, [standby])
            await stands_by(standby, leader)

            await random_phase()
            killed_at = time.perf_counter()
            leader.kill()
            async with asyncio.TaskGroup() as group:  # a failure of either cancels the other
                takeover = group.create_task(until_holder(client, standby.name, killed_at))
                if with_query:
                    after_kill = group.create_task(run_one(client, f"after-kill-{n}", USER, since=killed_at))
            results["kill"].append(takeover.result())
            if with_query:
                results["after_kill"].append(after_kill.result())
            leader, standby = standby, replicas.start()
            await leads(leader, [standby])
            await stands_by(standby, leader)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_FAILOVER_ROUNDS", "3")))
    parser.add_argument("--no-query", action="store_true", help="skip the DPQuery created at the SIGKILL")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped like Ctrl-C: the children too
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-failover-") as tmp:
        workdir = Path(tmp)
        plane = LocalControlPlane(workdir / "controlplane")
        agent: ChildProcess | None = None
        replicas: Replicas | None = None
        try:
            plane.start()
            env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "DPKUBE_SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
                   "PYTHONUNBUFFERED": "1"}
            agent = ChildProcess("nodeagent", [sys.executable, "-m", "dpkube.nodeagent", "--workdir",
                                               str(workdir / "agent")], workdir / "nodeagent.log", env).start()
            replicas = Replicas(workdir, env)
            results = asyncio.run(measure(plane, replicas, args.rounds, not args.no_query))
        finally:
            if replicas is not None:
                replicas.stop_all()
            if agent is not None:
                agent.stop()
            plane.stop()

    lease, retry = TIMINGS["lease_duration_seconds"], TIMINGS["retry_period_seconds"]
    print(f"leader election: lease {lease}s, renew deadline {TIMINGS['renew_deadline_seconds']}s, retry {retry}s "
          f"(+{JITTER:.0%} jitter); {args.rounds} rounds")
    print(f"{'measure':46} {'median':>8} {'min':>8} {'max':>8}   {'ratio: median (min-max)':26} against")

    def row(label: str, values: list[float], reference: float, against: str) -> None:
        med, low, high = statistics.median(values), min(values), max(values)
        ratios = f"{med / reference:5.2f}x ({low / reference:.2f}-{high / reference:.2f})"
        print(f"{label:46} {med:7.2f}s {low:7.2f}s {high:7.2f}s   {ratios:26} {against}")

    row("SIGTERM leader -> standby holds the lease", results["term"], retry, f"retry period {retry}s")
    row("SIGKILL leader -> standby holds the lease", results["kill"], lease, f"lease duration {lease}s")
    if results["stable"]:
        stable = statistics.median(results["stable"])
        row("DPQuery, stable leader: create -> Succeeded", results["stable"], stable, "stable leader (median)")
        row("DPQuery created at SIGKILL: kill -> Succeeded", results["after_kill"], stable, "stable leader (median)")
        after = [done - taken for done, taken in zip(results["after_kill"], results["kill"], strict=True)]
        row("  of which after the takeover", after, stable, "stable leader (median)")
    print(f"(SIGTERMed leaders' exit codes: {results['term_exit']}; whole run {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
