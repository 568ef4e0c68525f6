"""Latency of the REST facade, through the Python client, beside the engine's own times.

Starts its own platform (etcd, kube-apiserver, operator, node agent, and the facade under uvicorn on
127.0.0.1) in a temporary folder and measures, in one run:
  - a budget read (/get_remaining_budget), p50 and p95 (target: p50 < 5 ms),
  - the cost estimate of the seed's SQL count, p50, against the engine's own `estimate_cost`
    (target: within 10 ms of it),
  - the seed's SQL count through /smartnoise_sql_query (a DPQuery, a pod, a charge), p50, against
    the engine's own run,
  - /get_previous_queries for a user with OBJECTS DPQueries stored (the successful ones above plus
    refused ones, created directly on the API server), p50 and p95 (target: <= 5 ms),
  - the budget read again with them stored, and the facade's resident memory (target: < 300 MiB).
It prints a table with ratios. Usage: python -P bench/api.py [--reads 300] [--queries 20] [--objects 10000]
(-P: bench/operator.py would otherwise shadow the standard library's `operator`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpkube.api.services.queries import DATASET_LABEL, ORIGIN_LABEL, USER_LABEL, user_hash
from dpkube.client import Client
from dpkube.controlplane.platform import QUERY_NAMESPACE, SYSTEM_NAMESPACE, LocalPlatform
from dpkube.engine.cost import estimate_cost
from dpkube.engine.datasets import demo_datasets, load_frame
from dpkube.engine.release import run_query
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.dataset import dataset_object_name
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library, SmartnoiseSQLPayload

USER = "alice"
UNLIMITED = {"DPKUBE_REQUESTS_PER_SECOND": "100000", "DPKUBE_REQUEST_BURST": "100000"}
"""The facade's per-user rate limit, out of the way: reads back to back measure the read, not the limit."""
GRANT = (50.0, 0.05)
SQL = examples.SMARTNOISE_SQL_QUERY
REFUSED_EPSILON = 1000.0
"""Stored objects ask for more than the grant holds (and the grant is closed), and are created already
Rejected (status written right after the create), so the operator has nothing to compute for them."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(action: Callable[[], Any], repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def engine_floor(repeats: int) -> tuple[float, float]:
    """Median seconds of the engine's own cost and run of the SQL count on PENGUIN, in-process."""
    uri, metadata = demo_datasets()["PENGUIN"]
    assert uri is not None
    frame = load_frame(uri, metadata)
    payload = SmartnoiseSQLPayload.model_validate(examples.payload_fields(Library.SMARTNOISE_SQL, SQL))
    run_query(Library.SMARTNOISE_SQL, payload, metadata, frame)
    costs = timed(lambda: estimate_cost(Library.SMARTNOISE_SQL, payload, metadata), repeats)
    runs = timed(lambda: run_query(Library.SMARTNOISE_SQL, payload, metadata, frame), repeats)
    return statistics.median(costs), statistics.median(runs)


async def store_refused_queries(platform: LocalPlatform, count: int) -> float:
    """Close the user's grant, then store `count` of their DPQueries, each refused at once."""
    started = time.monotonic()
    labels = {USER_LABEL: user_hash(USER), DATASET_LABEL: dataset_object_name("PENGUIN")[:63].strip("-"),
              ORIGIN_LABEL: "bench"}
    spec = {"user": USER, "dataset": "PENGUIN", "library": "smartnoise-sql",
            "smartnoiseSql": {"queryStr": SQL["query_str"], "epsilon": REFUSED_EPSILON, "delta": SQL["delta"]}}
    async with KubeClient(platform.kube_config(), max_connections=64) as client:
        await Budgets(client, SYSTEM_NAMESPACE).grant(USER, "PENGUIN", *GRANT, may_query=False)
        semaphore = asyncio.Semaphore(48)

        async def make(n: int) -> None:
            async with semaphore:
                await client.create(DPQUERY.api_path(QUERY_NAMESPACE), {
                    "apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery",
                    "metadata": {"name": f"stored-{n}", "labels": labels}, "spec": spec})
                await client.patch(DPQUERY.api_path(QUERY_NAMESPACE, f"stored-{n}") + "/status",
                                   {"status": {"phase": "Rejected", "message": "stored by the benchmark"}})

        await asyncio.gather(*(make(n) for n in range(count)))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            items = await client.list_all(DPQUERY.api_path(QUERY_NAMESPACE))
            if sum((q.get("status") or {}).get("phase") == "Rejected" for q in items) >= count:
                break
            await asyncio.sleep(2)
    return time.monotonic() - started


def measure(platform: LocalPlatform, reads: int, queries: int, objects: int) -> dict[str, Any]:
    with Client(platform.url, platform.tokens[USER], "PENGUIN") as client:
        results: dict[str, Any] = {
            "budget": timed(client.get_remaining_budget, reads),
            "cost": timed(lambda: client.smartnoise_sql.cost(SQL["query_str"], SQL["epsilon"], SQL["delta"],
                                                             SQL["mechanisms"]), reads),
            "query": timed(lambda: client.smartnoise_sql.query(SQL["query_str"], SQL["epsilon"], SQL["delta"],
                                                               SQL["mechanisms"]), queries, warmup=1),
        }
        results["store_seconds"] = asyncio.run(store_refused_queries(platform, objects))
        results["succeeded"] = len(client.get_previous_queries())
        results["history"] = timed(client.get_previous_queries, 20)
        results["budget_stored"] = timed(client.get_remaining_budget, reads)
    results["facade_rss_mib"] = platform.children["facade"].resident_bytes() / 2**20
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()
    cost_floor, run_floor = engine_floor(args.queries)
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-api-") as tmp, \
            LocalPlatform(Path(tmp), users=(USER,), grants={(USER, "PENGUIN"): GRANT},
                          extra_env=UNLIMITED) as platform:
        results = measure(platform, args.reads, args.queries, args.objects)

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:10.2f}ms"

    budget, cost, query, history = results["budget"], results["cost"], results["query"], results["history"]
    print(f"{'measure':52} {'value':>12} {'ratio':>10}  target")
    print(f"{'budget read p50':52} {ms(statistics.median(budget))} {'':>10}  < 5 ms")
    print(f"{'budget read p95':52} {ms(percentile(budget, 0.95))}")
    print(f"{'engine estimate_cost, SQL count (median)':52} {ms(cost_floor)} {1.0:9.1f}x")
    cost_p50 = statistics.median(cost)
    print(f"{'cost estimate route p50':52} {ms(cost_p50)} {cost_p50 / cost_floor:9.1f}x  "
          f"within 10 ms of the engine (+{(cost_p50 - cost_floor) * 1000:.1f} ms)")
    print(f"{'engine run, SQL count on PENGUIN (median)':52} {ms(run_floor)} {1.0:9.1f}x")
    query_p50 = statistics.median(query)
    print(f"{'SQL query route end-to-end p50':52} {ms(query_p50)} {query_p50 / run_floor:9.1f}x  "
          f"(+{(query_p50 - run_floor) * 1000:.0f} ms over the engine)")
    print(f"{'SQL query route end-to-end p95':52} {ms(percentile(query, 0.95))} "
          f"{percentile(query, 0.95) / run_floor:9.1f}x")
    label = f"previous queries, {args.objects + args.queries + 1} stored, {results['succeeded']} listed"
    print(f"{label + ' p50':52} {ms(statistics.median(history))} {'':>10}  <= 5 ms")
    print(f"{label + ' p95':52} {ms(percentile(history, 0.95))}")
    stored = results["budget_stored"]
    print(f"{'budget read p50, with them stored':52} {ms(statistics.median(stored))} {'':>10}  <= 5 ms")
    print(f"{'budget read p95, with them stored':52} {ms(percentile(stored, 0.95))}")
    print(f"{'facade RSS, with them stored':52} {results['facade_rss_mib']:8.0f} MiB {'':>10}  < 300 MiB")
    print(f"(storing {args.objects} refused DPQueries took {results['store_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
