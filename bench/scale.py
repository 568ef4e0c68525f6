"""The operator's control loop at scale: a burst of DPQueries admitted and settled, beside Kueue's figure.

Starts its own platform (etcd, kube-apiserver, operator; no node agent, so query pods stay unbound and
only the control loop is measured) and, in one run:
  - creates a burst of N cost-mode queries (each a different WHERE) without a queue and through a Queue,
    and N query-mode queries without and through a Queue (to Admitted: their pods are left aside);
  - reports the settle rate (queries/s from the first creation to the last settled), the latency p50 and
    p99 from creation to the terminal phase (cost mode) or to Admitted (query mode), and the operator's
    CPU seconds and peak RSS, each rate beside Kueue's 43 admitted workloads/s as a ratio;
  - fairness: a lone query through another Queue and a lone cost-mode query, R times each (p50 and p99
    to Admitted / to the end), first while a backlog of N queries arrives in a locked Queue, then once
    the operator has answered all of them (they wait);
  - API calls per query, from the API server's audit log, on a small separate burst (auditing slows
    the API server, so it is not on during the timed runs).
Usage: python -m bench.scale [--queries 10000] [--fair 20] [--audited 200]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpkube.controlplane.platform import QUERY_NAMESPACE, SYSTEM_NAMESPACE, LocalPlatform
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.client import ApiError, KubeClient
from dpkube.models.kinds import DPQUERY, QUEUE

KUEUE_ADMITTED_PER_SECOND = 43.0
"""Kueue's performance test: 15,000 workloads through envtest, about 43 admitted workloads/s."""
USER = "scale"
TIMED_BURSTS = (
    ("cost mode, no queue", "c", "cost", None),
    ("cost mode, through a Queue", "cq", "cost", "scale-open"),
    ("query mode to Admitted, no queue (pods unbound)", "q", "query", None),
    ("query mode to Admitted, through a Queue", "qq", "query", "scale-open"),
)
"""label, prefix, mode, queue. Each timed burst is a user of its own: a grant records at most about 15,000
queries in flight (its ConfigMap's 1 MiB), and the query-mode bursts' admitted queries never end here."""
CREATE_CONCURRENCY = 32
TERMINAL = {"Succeeded", "Failed", "Rejected", "TimedOut", "Cancelled"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def manifest(name: str, index: int, mode: str, queue: str | None, user: str = USER) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "user": user, "dataset": "PENGUIN", "library": "smartnoise-sql", "mode": mode,
        "smartnoiseSql": {"queryStr": f"SELECT COUNT(*) AS n FROM df WHERE bill_length_mm > {index % 997}",
                          "epsilon": 0.1, "delta": 1e-5},
    }
    if queue:
        spec["queue"] = queue
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery", "metadata": {"name": name}, "spec": spec}


def reached(mode: str) -> Callable[[dict[str, Any]], bool]:
    """When a query counts as settled: its end (cost mode), or its admission (query mode, pods left aside)."""
    def check(status: dict[str, Any]) -> bool:
        phase = status.get("phase")
        return phase in TERMINAL or (mode == "query" and phase in ("Admitted", "Running"))
    return check


@dataclass
class Burst:
    created: dict[str, float]
    settled: dict[str, float]
    phases: collections.Counter[str]

    def rate(self) -> float:
        if not self.settled:
            return 0.0
        return len(self.settled) / (max(self.settled.values()) - min(self.created.values()))

    def latencies(self) -> list[float]:
        return [self.settled[n] - self.created[n] for n in self.settled if n in self.created]


class Watcher:
    """Records when each query of the namespace first reached the wanted state, from one watch."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self.seen: dict[str, float] = {}
        self.phases: dict[str, str] = {}
        self.answered: set[str] = set()
        """Queries whose status the operator has written (a waiting one included)."""
        self.check: Callable[[dict[str, Any]], bool] = reached("cost")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for _ in range(100):  # a freshly installed CRD's storage answers 429 for a moment
            try:
                listing = await self.client.list(DPQUERY.api_path(self.namespace))
                break
            except ApiError as exc:
                if exc.status != 429:
                    raise
                await asyncio.sleep(0.2)
        self._task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def _run(self, version: str) -> None:
        while True:
            async for event in self.client.watch(DPQUERY.api_path(self.namespace), resource_version=version,
                                                 timeout_seconds=300):
                obj = event["object"]
                version = obj["metadata"].get("resourceVersion", version)
                name, status = obj["metadata"].get("name"), obj.get("status") or {}
                if name and status.get("phase"):
                    self.answered.add(name)
                if name and name not in self.seen and self.check(status):
                    self.seen[name] = time.monotonic()
                    self.phases[name] = status.get("phase", "")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def create_all(client: KubeClient, namespace: str, bodies: list[dict[str, Any]]) -> dict[str, float]:
    created: dict[str, float] = {}
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.monotonic()
            await client.create(DPQUERY.api_path(namespace), body)
            created[body["metadata"]["name"]] = started

    await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))
    return created


async def burst(client: KubeClient, watcher: Watcher, prefix: str, count: int, mode: str,
                queue: str | None, timeout: float, user: str = USER) -> Burst:
    watcher.check = reached(mode)
    names = [f"{prefix}-{i}" for i in range(count)]
    created = await create_all(client, watcher.namespace,
                               [manifest(n, i, mode, queue, user) for i, n in enumerate(names)])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(n in watcher.seen for n in names):
        await asyncio.sleep(0.2)
    settled = {n: watcher.seen[n] for n in names if n in watcher.seen}
    return Burst(created, settled, collections.Counter(watcher.phases[n] for n in settled))


async def warm_up(client: KubeClient, watcher: Watcher) -> None:
    """One query of each mode to its end, so the timed bursts find the operator and its pricing workers ready."""
    for mode in ("cost", "query"):
        await burst(client, watcher, f"warm-{mode}", 1, mode, None, timeout=300)


async def make_queue(client: KubeClient, name: str, **spec: Any) -> None:
    await client.create(QUEUE.api_path(SYSTEM_NAMESPACE),
                        {"apiVersion": "dpkube.io/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": spec})


class OperatorGauge:
    """CPU seconds and resident memory of the operator process (its pricing workers apart)."""

    def __init__(self, process: ChildProcess) -> None:
        self.process = process
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def memory_mib(self) -> tuple[float, float]:
        """Resident memory now and at its peak."""
        return self.process.resident_bytes() / 2**20, self.process.peak_resident_bytes() / 2**20


def row(label: str, result: Burst, count: int, cpu: float) -> None:
    lat = result.latencies()
    rate = result.rate()
    print(f"{label:44} {len(result.settled):>6}/{count:<6} {rate:>8.1f}/s {rate / KUEUE_ADMITTED_PER_SECOND:>7.2f}x "
          f"{percentile(lat, 0.5):>8.2f}s {percentile(lat, 0.99):>8.2f}s {cpu:>8.1f}s  {dict(result.phases)}")


async def timed(platform: LocalPlatform, queries: int, fair: int, rows: set[str]) -> None:
    gauge = OperatorGauge(platform.children["operator"])
    async with KubeClient(platform.kube_config(), max_connections=CREATE_CONCURRENCY + 8) as client:
        await make_queue(client, "scale-open")
        await make_queue(client, "scale-held", locked=True)
        await make_queue(client, "scale-other")
        watcher = Watcher(client, QUERY_NAMESPACE)
        await watcher.start()
        await warm_up(client, watcher)
        print(f"{'burst':44} {'settled':>13} {'rate':>10} {'/Kueue':>8} {'p50':>9} {'p99':>9} {'op CPU':>9}")
        timeout = max(120.0, queries / 5)
        for label, prefix, mode, queue in TIMED_BURSTS:
            if prefix not in rows:
                continue
            cpu = gauge.cpu_seconds()
            result = await burst(client, watcher, prefix, queries, mode, queue, timeout, user=f"{USER}-{prefix}")
            row(label, result, queries, gauge.cpu_seconds() - cpu)
        rss, peak = gauge.memory_mib()
        print(f"operator RSS {rss:.0f} MiB (peak {peak:.0f} MiB) with {len(rows) * queries} DPQueries stored")
        if not fair:
            await watcher.stop()
            return
        held = await burst(client, watcher, "held", queries, "query", "scale-held", timeout=0)
        await lone(client, watcher, f"fairness, while {queries} queries arrive in a locked Queue", "arriving", fair)
        while not all(name in watcher.answered for name in held.created):
            await asyncio.sleep(0.2)
        await lone(client, watcher, f"fairness, once {queries} queries wait in a locked Queue", "waiting", fair)
        await watcher.stop()


async def lone(client: KubeClient, watcher: Watcher, label: str, prefix: str, count: int) -> None:
    """Lone queries one after another: one through another Queue to Admitted, then one in cost mode."""
    lone_queue, lone_cost = [], []
    for i in range(count):
        one = await burst(client, watcher, f"lone-q{prefix}{i}", 1, "query", "scale-other", timeout=60)
        lone_queue += one.latencies()
        one = await burst(client, watcher, f"lone-c{prefix}{i}", 1, "cost", None, timeout=60)
        lone_cost += one.latencies()
    print(f"{label}: a lone query through another Queue to Admitted p50 {percentile(lone_queue, 0.5):.3f}s "
          f"p99 {percentile(lone_queue, 0.99):.3f}s; a lone cost-mode query p50 {percentile(lone_cost, 0.5):.3f}s "
          f"p99 {percentile(lone_cost, 0.99):.3f}s ({count} each, in order: "
          f"{' '.join(f'{x:.2f}' for x in lone_queue)} / {' '.join(f'{x:.2f}' for x in lone_cost)})")


async def audited(platform: LocalPlatform, count: int) -> None:
    assert platform.plane is not None
    async with KubeClient(platform.kube_config()) as client:
        await make_queue(client, "audit-open")
        watcher = Watcher(client, QUERY_NAMESPACE)
        await watcher.start()
        await warm_up(client, watcher)
        for label, mode, queue in (("cost mode", "cost", None), ("query mode, through a Queue", "query",
                                                                     "audit-open")):
            before = len(platform.plane.audit_events())
            result = await burst(client, watcher, f"a{mode}", count, mode, queue, timeout=300)
            await asyncio.sleep(2)
            events = platform.plane.audit_events()[before:]
            operator = [e for e in events if e.get("userAgent", "").startswith(("dpkube-operator", "kopf"))]
            writes = [e for e in operator if e["verb"] in ("create", "update", "patch", "delete")]
            status = [e for e in writes if e.get("objectRef", {}).get("resource") == "dpqueries"
                      and e.get("objectRef", {}).get("subresource") == "status"]
            print(f"API calls per query, {label}: {len(operator) / count:.1f} by the operator "
                  f"({len(writes) / count:.1f} writes, {len(status) / count:.1f} DPQuery status writes); "
                  f"{len(result.settled)}/{count} settled")
            kinds = collections.Counter(
                f"{e['verb']} {e.get('objectRef', {}).get('resource', '?')}"
                f"{'/' + e['objectRef']['subresource'] if e.get('objectRef', {}).get('subresource') else ''}"
                for e in operator)
            print("    " + ", ".join(f"{kind} {n / count:.1f}" for kind, n in kinds.most_common()))
        await watcher.stop()


def start(workdir: Path, audit: bool) -> LocalPlatform:
    users = [USER, *(f"{USER}-{prefix}" for _, prefix, _, _ in TIMED_BURSTS)]
    grants = {(user, "PENGUIN"): (1e9, 0.5) for user in users}
    return LocalPlatform(workdir, users=("alice",), grants=grants, facade=False, node_agent=False,
                         audit=audit).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10_000, help="queries per burst")
    parser.add_argument("--fair", type=int, default=20, help="lone queries timed beside the backlog (0: none)")
    parser.add_argument("--audited", type=int, default=200, help="queries of the audited burst (0: none)")
    parser.add_argument("--rows", default="c,cq,q,qq",
                        help="bursts to time: c (cost), cq (cost via a Queue), q (query), qq (query via a Queue)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpkube-scale-") as folder:
        platform = start(Path(folder) / "timed", audit=False)
        try:
            asyncio.run(timed(platform, args.queries, args.fair, set(args.rows.split(","))))
        finally:
            platform.stop()
        if not args.audited:
            return
        platform = start(Path(folder) / "audited", audit=True)
        try:
            asyncio.run(audited(platform, args.audited))
        finally:
            platform.stop()


if __name__ == "__main__":
    main()
