"""End-to-end latency and throughput of DPQueries on the local platform, beside the engine's own floor.

Starts its own platform (etcd, kube-apiserver, operator, node agent) in a temporary folder and
measures, in one run:
  - the engine's own time for the seed's SQL count on PENGUIN (the floor),
  - creation -> Succeeded over N queries with cold pods (one new process per query),
  - the same with warm pods (pre-started runners that claim one query each),
  - completed queries per second with 8 users submitting concurrently (closed loop),
  - the operator's resident memory with many DPQuery objects stored.
It prints a table with ratios. Usage: python bench/operator.py [--queries 30] [--objects 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dpkube.controlplane.platform import QUERY_NAMESPACE, SYSTEM_NAMESPACE, LocalPlatform
from dpkube.engine.cost import estimate_cost
from dpkube.engine.datasets import demo_datasets, load_frame
from dpkube.engine.release import run_query
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube.models.payloads import Library, SmartnoiseSQLPayload

USERS = [f"bench-{i}" for i in range(8)]
SQL = {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5}
TERMINAL = {"Succeeded", "Failed", "Rejected", "TimedOut", "Cancelled"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def engine_floor(repeats: int) -> tuple[float, float]:
    """Median seconds of the engine's own cost and run of the SQL count on PENGUIN, in-process."""
    uri, metadata = demo_datasets()["PENGUIN"]
    assert uri is not None
    frame = load_frame(uri, metadata)
    payload = SmartnoiseSQLPayload.model_validate(examples.payload_fields(Library.SMARTNOISE_SQL,
                                                                          examples.SMARTNOISE_SQL_QUERY))
    run_query(Library.SMARTNOISE_SQL, payload, metadata, frame)
    costs, runs = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        estimate_cost(Library.SMARTNOISE_SQL, payload, metadata)
        costs.append(time.perf_counter() - started)
        started = time.perf_counter()
        run_query(Library.SMARTNOISE_SQL, payload, metadata, frame)
        runs.append(time.perf_counter() - started)
    return statistics.median(costs), statistics.median(runs)


def dpquery(name: str, user: str, queue: str | None = None, dataset: str = "PENGUIN") -> dict[str, Any]:
    spec: dict[str, Any] = {"user": user, "dataset": dataset, "library": "smartnoise-sql", "smartnoiseSql": SQL}
    if queue:
        spec["queue"] = queue
    return {"apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery", "metadata": {"name": name}, "spec": spec}


async def run_one(client: KubeClient, name: str, user: str, queue: str | None = None,
                  since: float | None = None) -> float:
    """Seconds from the create call (or from `since`, a perf_counter) to Succeeded, seen by a watch on the query."""
    started = time.perf_counter() if since is None else since
    created = await client.create(DPQUERY.api_path(QUERY_NAMESPACE), dpquery(name, user, queue))
    async for event in client.watch(DPQUERY.api_path(QUERY_NAMESPACE), field_selector=f"metadata.name={name}",
                                    resource_version=created["metadata"]["resourceVersion"], timeout_seconds=120):
        phase = (event["object"].get("status") or {}).get("phase")
        if phase in TERMINAL:
            if phase != "Succeeded":
                raise RuntimeError(f"{name} ended {phase}: {event['object']['status'].get('message')}")
            return time.perf_counter() - started
    raise RuntimeError(f"{name} did not finish")


async def warm_ready(client: KubeClient, queue: str, count: int) -> None:
    """Wait until `count` warm pods of the queue run, plus the time their runners take to import."""
    while True:
        pods = await client.list(f"/api/v1/namespaces/{QUERY_NAMESPACE}/pods",
                                 label_selector=f"dpkube.io/warm-pool={queue},!dpkube.io/query-uid")
        running = [p for p in pods["items"] if (p.get("status") or {}).get("phase") == "Running"]
        if len(running) >= count:
            await asyncio.sleep(3.0)
            return
        await asyncio.sleep(0.2)


async def throughput(client: KubeClient, seconds: float, queue: str | None) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def user_loop(user: str) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < deadline:
            await run_one(client, f"tp-{user}-{n}-{int(time.time() * 1000)}", user, queue)
            done += 1
            n += 1

    started = time.monotonic()
    await asyncio.gather(*(user_loop(user) for user in USERS))
    return done / (time.monotonic() - started)


async def operator_memory(platform: LocalPlatform, client: KubeClient, objects: int) -> tuple[int, int]:
    """(RSS before, RSS after) of the operator, in bytes, with `objects` DPQueries stored and settled."""

    operator = platform.children["operator"]
    before = operator.resident_bytes()
    semaphore = asyncio.Semaphore(32)

    async def make(n: int) -> None:
        async with semaphore:
            await client.create(DPQUERY.api_path(QUERY_NAMESPACE), dpquery(f"mem-{n}", "nobody", dataset="NONE"))

    await asyncio.gather(*(make(n) for n in range(objects)))
    while True:
        items = await client.list_all(DPQUERY.api_path(QUERY_NAMESPACE))
        if sum((q.get("status") or {}).get("phase") == "Rejected" for q in items) >= objects:
            break
        await asyncio.sleep(2)
    return before, operator.resident_bytes()


async def measure(platform: LocalPlatform, queries: int, objects: int, seconds: float) -> dict[str, Any]:
    async with KubeClient(platform.kube_config(), max_connections=64) as client:
        await client.create(QUEUE.api_path(SYSTEM_NAMESPACE), {
            "apiVersion": "dpkube.io/v1alpha1", "kind": "Queue", "metadata": {"name": "warm"},
            "spec": {"warmPods": 4, "warmLibraries": ["smartnoise-sql"]}})
        cold = [await run_one(client, f"cold-{n}", USERS[0]) for n in range(queries)]
        await warm_ready(client, "warm", 4)
        warm = []
        for n in range(queries):
            warm.append(await run_one(client, f"warm-{n}", USERS[1], "warm"))
            await warm_ready(client, "warm", 2)
        cold_tp = await throughput(client, seconds, None)
        memory = await operator_memory(platform, client, objects) if objects else (0, 0)
    return {"cold": cold, "warm": warm, "cold_tp": cold_tp, "memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    cost_floor, run_floor = engine_floor(args.queries)
    grants = {(user, "PENGUIN"): (1e6, 0.5) for user in USERS}
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-") as tmp, \
            LocalPlatform(Path(tmp), users=tuple(USERS), grants=grants) as platform:
        results = asyncio.run(measure(platform, args.queries, args.objects, args.seconds))
    cold, warm = results["cold"], results["warm"]
    print(f"{'measure':44} {'value':>12} {'vs engine run':>14}")
    print(f"{'engine cost estimate (median)':44} {cost_floor * 1000:10.1f}ms")
    print(f"{'engine run, SQL count on PENGUIN (median)':44} {run_floor * 1000:10.1f}ms {1.0:13.1f}x")
    for label, values in (("cold pod", cold), ("warm pod", warm)):
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"{label + ' end-to-end p50':44} {p50 * 1000:10.1f}ms {p50 / run_floor:13.1f}x"
              f"   (+{(p50 - run_floor) * 1000:.0f} ms over the engine)")
        print(f"{label + ' end-to-end p95':44} {p95 * 1000:10.1f}ms {p95 / run_floor:13.1f}x")
    print(f"{'throughput, 8 users, cold pods':44} {results['cold_tp']:9.2f}/s")
    before, after = results["memory"]
    if after:
        print(f"{f'operator RSS, before -> {args.objects} DPQueries':44} "
              f"{before / 2**20:8.0f} MiB -> {after / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
