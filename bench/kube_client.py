"""CPU per API request of dpkube's API client, by connection-pool size, with many requests in flight.

The operator sends its requests from many reconciles at once. httpcore looks at every pooled connection
when a request starts or ends, and an idle one costs a readability poll, so a pool larger than the
requests in flight costs CPU. This starts a local API server and, in one run, times GETs of a ConfigMap
and status-like PATCHes of it at a fixed concurrency through clients of each pool size, alternating the
sizes, and prints each beside the operator's pool (the first size) as a ratio.

    python -m bench.kube_client [--requests 1000] [--concurrency 32] [--pools 8,32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from dpkube.controlplane.local import LocalControlPlane
from dpkube.k8s.client import KubeClient, KubeConfig, NotFound, core_path

NAMESPACE = "default"
NAME = "bench-kube-client"


async def timed(requests: int, concurrency: int, send: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """(CPU microseconds per request of this process, requests per second of wall time)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await send(i)

    wall, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return 1e6 * (time.process_time() - cpu) / requests, requests / (time.monotonic() - wall)


async def measure(config: KubeConfig, pool: int, requests: int, concurrency: int) -> dict[str, tuple[float, float]]:
    path = core_path("configmaps", NAMESPACE, NAME)
    async with KubeClient(config, max_connections=pool) as client:
        try:
            await client.get(path)
        except NotFound:
            await client.create(core_path("configmaps", NAMESPACE), {"metadata": {"name": NAME}, "data": {}})
        await timed(concurrency, concurrency, lambda i: client.get(path))  # open the pool's connections
        return {
            "GET": await timed(requests, concurrency, lambda i: client.get(path)),
            "PATCH": await timed(requests, concurrency, lambda i: client.patch(path, {"data": {"n": str(i)}})),
        }


async def run(config: KubeConfig, pools: list[int], requests: int, concurrency: int, rounds: int) -> None:
    results: dict[int, dict[str, list[tuple[float, float]]]] = {p: {"GET": [], "PATCH": []} for p in pools}
    for _ in range(rounds):
        for pool in pools:
            for verb, figures in (await measure(config, pool, requests, concurrency)).items():
                results[pool][verb].append(figures)
    base = pools[0]
    print(f"{requests} requests per verb, {concurrency} in flight, {rounds} alternating rounds; "
          f"ratios against a pool of {base}")
    print(f"{'pool':>5} {'verb':6} {'CPU us/request':>15} {'ratio':>7} {'requests/s':>11} {'ratio':>7}")
    for pool in pools:
        for verb, figures in results[pool].items():
            cpu = sum(f[0] for f in figures) / len(figures)
            rate = sum(f[1] for f in figures) / len(figures)
            base_figures = results[base][verb]
            base_cpu = sum(f[0] for f in base_figures) / len(base_figures)
            base_rate = sum(f[1] for f in base_figures) / len(base_figures)
            print(f"{pool:>5} {verb:6} {cpu:>15.0f} {cpu / base_cpu:>7.2f} {rate:>11.0f} {rate / base_rate:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per verb and pool size, per round")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (the operator's reconciles)")
    parser.add_argument("--pools", default="8,32", help="pool sizes, the operator's first (default 8,32)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    args = parser.parse_args()
    pools = [int(p) for p in args.pools.split(",")]
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-") as workdir:
        plane = LocalControlPlane(Path(workdir)).start()
        try:
            asyncio.run(run(KubeConfig.from_kubeconfig(plane.kubeconfig), pools, args.requests, args.concurrency,
                            args.rounds))
        finally:
            plane.stop()


if __name__ == "__main__":
    main()
