"""CPU per API request of dpkube's API client, against the httpx transport it replaced, with many in flight.

The operator sends its requests from many reconciles at once, and its rate is bound by its CPU per API call.
This starts a local API server and, in one run, times GETs of a ConfigMap and status-like PATCHes of it at a
fixed concurrency: through dpkube's client (aiohttp) at each pool size, and through httpx, the transport it
used before, at the operator's pool size. Clients alternate in rounds; each is printed beside dpkube's
client at the operator's pool (the first size) as a ratio.

    python -m bench.kube_client [--requests 1000] [--concurrency 32] [--pools 8,32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from dpkube.controlplane.local import LocalControlPlane
from dpkube.k8s.client import KubeClient, KubeConfig, NotFound, core_path

NAMESPACE = "default"
NAME = "bench-kube-client"
PATH = core_path("configmaps", NAMESPACE, NAME)
Verb = Callable[[int], Awaitable[object]]


async def timed(requests: int, concurrency: int, send: Verb) -> tuple[float, float]:
    """(CPU microseconds per request of this process, requests per second of wall time)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await send(i)

    wall, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return 1e6 * (time.process_time() - cpu) / requests, requests / (time.monotonic() - wall)


@contextlib.asynccontextmanager
async def dpkube_client(config: KubeConfig, pool: int) -> AsyncIterator[tuple[Verb, Verb]]:
    async with KubeClient(config, max_connections=pool) as client:
        yield (lambda i: client.get(PATH)), (lambda i: client.patch(PATH, {"data": {"n": str(i)}}))


@contextlib.asynccontextmanager
async def httpx_client(config: KubeConfig, pool: int) -> AsyncIterator[tuple[Verb, Verb]]:
    """The same two requests over httpx, as dpkube's client sent them before."""
    headers = {"Accept": "application/json"}
    if token := config.bearer():
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=config.server, verify=config.ssl_context(), headers=headers,
                                 limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool)) as http:
        async def get(i: int) -> Any:
            return (await http.get(PATH)).json()

        async def patch(i: int) -> Any:
            return (await http.patch(PATH, content=json.dumps({"data": {"n": str(i)}}),
                                     headers={"Content-Type": "application/merge-patch+json"})).json()

        yield get, patch


async def measure(config: KubeConfig, client: str, pool: int, requests: int, concurrency: int
                  ) -> dict[str, tuple[float, float]]:
    opened = dpkube_client(config, pool) if client == "dpkube" else httpx_client(config, pool)
    async with opened as (get, patch):
        await timed(concurrency, concurrency, get)  # open the pool's connections
        return {"GET": await timed(requests, concurrency, get), "PATCH": await timed(requests, concurrency, patch)}


async def run(config: KubeConfig, pools: list[int], requests: int, concurrency: int, rounds: int) -> None:
    async with KubeClient(config) as admin:
        try:
            await admin.get(PATH)
        except NotFound:
            await admin.create(core_path("configmaps", NAMESPACE), {"metadata": {"name": NAME}, "data": {}})
    clients = [("dpkube", pool) for pool in pools] + [("httpx", pools[0])]
    results: dict[tuple[str, int], dict[str, list[tuple[float, float]]]] = {c: {"GET": [], "PATCH": []}
                                                                          for c in clients}
    for _ in range(rounds):
        for client, pool in clients:
            for verb, figures in (await measure(config, client, pool, requests, concurrency)).items():
                results[(client, pool)][verb].append(figures)
    base = clients[0]
    print(f"{requests} requests per verb, {concurrency} in flight, {rounds} alternating rounds; "
          f"ratios against dpkube's client with a pool of {base[1]}")
    print(f"{'client':8} {'pool':>5} {'verb':6} {'CPU us/request':>15} {'ratio':>7} {'requests/s':>11} {'ratio':>7}")
    for client, pool in clients:
        for verb, figures in results[(client, pool)].items():
            cpu = sum(f[0] for f in figures) / len(figures)
            rate = sum(f[1] for f in figures) / len(figures)
            base_figures = results[base][verb]
            base_cpu = sum(f[0] for f in base_figures) / len(base_figures)
            base_rate = sum(f[1] for f in base_figures) / len(base_figures)
            print(f"{client:8} {pool:>5} {verb:6} {cpu:>15.0f} {cpu / base_cpu:>7.2f} {rate:>11.0f} "
                  f"{rate / base_rate:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per verb and client, per round")
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
