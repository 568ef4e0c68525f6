"""Load time of the web dashboard's budget view (`GET /ui`) with many stored DPQueries.

Starts its own platform (etcd, kube-apiserver, operator and the facade under uvicorn on 127.0.0.1; no node
agent) in a temporary folder, stores N DPQueries of one user directly on the API server (each marked
Succeeded with a small spend, so the page lists, totals and charts all of them), waits until the facade's
watch-fed view holds them, signs in through the page's form and loads the page R times.
It prints p50 and p95 beside the 300 ms bar, as a ratio. Usage: python -m bench.dashboard [--objects 10000]
[--loads 50]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dpkube.api.services.queries import DATASET_LABEL, ORIGIN_LABEL, USER_LABEL, user_hash
from dpkube.controlplane.platform import QUERY_NAMESPACE, SYSTEM_NAMESPACE, LocalPlatform
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.dataset import dataset_object_name
from dpkube.models.kinds import DPQUERY

USER = "alice"
GRANT = (1000.0, 0.05)
BAR_SECONDS = 0.300
SQL = examples.SMARTNOISE_SQL_QUERY
COUNT = re.compile(r'id="queries">\s*<h2>Queries <span class="count">(\d+)</span>')
CONCURRENCY = 48


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def store_queries(platform: LocalPlatform, count: int) -> float:
    """Store `count` DPQueries of USER, each then marked Succeeded with a spend (the grant is closed, so the
    operator admits none of them)."""
    started = time.monotonic()
    labels = {USER_LABEL: user_hash(USER), DATASET_LABEL: dataset_object_name("PENGUIN")[:63].strip("-"),
              ORIGIN_LABEL: "bench"}
    spec = {"user": USER, "dataset": "PENGUIN", "library": "smartnoise-sql",
            "smartnoiseSql": {"queryStr": SQL["query_str"], "epsilon": 0.01, "delta": SQL["delta"]}}
    async with KubeClient(platform.kube_config(), max_connections=64) as client:
        await Budgets(client, SYSTEM_NAMESPACE).grant(USER, "PENGUIN", *GRANT, may_query=False)
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def make(n: int) -> None:
            name = f"stored-{n}"
            ended = datetime.fromtimestamp(started - count + n, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            async with semaphore:
                await client.create(DPQUERY.api_path(QUERY_NAMESPACE), {
                    "apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery",
                    "metadata": {"name": name, "labels": labels}, "spec": spec})
                await client.patch(DPQUERY.api_path(QUERY_NAMESPACE, name) + "/status", {"status": {
                    "phase": "Succeeded", "spent": {"epsilon": 0.01, "delta": 0.0}, "completionTime": ended,
                    "message": "stored by the benchmark"}})

        await asyncio.gather(*(make(n) for n in range(count)))
    return time.monotonic() - started


def signed_in(url: str, token: str) -> httpx.Client:
    """A client holding the dashboard's session cookie, signed in through its form."""
    client = httpx.Client(base_url=url, timeout=60)
    client.get("/ui/login")
    response = client.post("/ui/login", data={"csrf": client.cookies["dpkube_csrf"], "token": token},
                           headers={"Origin": url})
    if response.status_code != 303:
        raise RuntimeError(f"sign-in answered {response.status_code}: {response.text[:200]}")
    return client


def listed(client: httpx.Client) -> int:
    response = client.get("/ui")
    response.raise_for_status()
    found = COUNT.search(response.text)
    return int(found.group(1)) if found else 0


def measure(platform: LocalPlatform, objects: int, loads: int) -> tuple[float, float, list[float], int]:
    store_seconds = asyncio.run(store_queries(platform, objects))
    client = signed_in(platform.url, platform.tokens[USER])
    try:
        started = time.monotonic()
        while (seen := listed(client)) < objects and time.monotonic() - started < 300:
            time.sleep(1)
        wait_seconds = time.monotonic() - started
        for _ in range(3):
            client.get("/ui")
        samples = []
        for _ in range(loads):
            began = time.perf_counter()
            response = client.get("/ui")
            samples.append(time.perf_counter() - began)
            response.raise_for_status()
    finally:
        client.close()
    return store_seconds, wait_seconds, samples, seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-dashboard-") as tmp, \
            LocalPlatform(Path(tmp), users=(USER,), node_agent=False) as platform:
        store_seconds, wait_seconds, samples, seen = measure(platform, args.objects, args.loads)
    p50, p95 = statistics.median(samples), percentile(samples, 0.95)
    print(f"{'measure':52} {'value':>12} {'ratio':>10}  target")
    label = f"budget view GET /ui, {seen} queries of the user"
    print(f"{label + ' p50':52} {p50 * 1000:10.2f}ms {p50 / BAR_SECONDS:9.2f}x  < 300 ms")
    print(f"{label + ' p95':52} {p95 * 1000:10.2f}ms {p95 / BAR_SECONDS:9.2f}x  < 300 ms")
    print(f"(storing {args.objects} DPQueries took {store_seconds:.0f} s; the view held them {wait_seconds:.0f} s "
          f"later; {args.loads} loads)")


if __name__ == "__main__":
    main()
