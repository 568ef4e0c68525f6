"""Queries on real containers (a kubelet, containerd and runc on this machine) against the node agent's processes.

In one run, one after the other so that they never share the CPU:
  - the node agent: the local platform, N queries with cold pods, then N with warm pods;
  - the real cluster: dpkube's images (built, or from the cache), the cluster's start, `helm install` of the
    chart, then the same N cold and N warm queries.
The chart runs on the core image, as in tests/cluster. Prints each latency with its ratio to the node agent's,
the images' sizes and the start times. Needs root. `--full` also builds and imports the full image (torch);
`--cold` builds every binary and image from nothing first (its own cache and Go build cache: 20 minutes and more).

    python -m bench.cluster [--queries 20] [--full] [--cold]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.operator import USERS, percentile, run_one, warm_ready

from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster
from dpkube.controlplane import binaries
from dpkube.controlplane.platform import SYSTEM_NAMESPACE, LocalPlatform
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.models.kinds import QUEUE

REPO = Path(__file__).resolve().parents[1]
WARM = 4


async def latencies(config: KubeConfig, queries: int, prefix: str, grant: bool) -> dict[str, list[float]]:
    """N queries on cold pods (one new pod each), then N on warm pods (runners started ahead)."""
    async with KubeClient(config, max_connections=64) as client:
        if grant:
            for user in USERS[:2]:
                await Budgets(client, SYSTEM_NAMESPACE).grant(user, "PENGUIN", 1e6, 0.5)
        await client.create(QUEUE.api_path(SYSTEM_NAMESPACE), {
            "apiVersion": "dpkube.io/v1alpha1", "kind": "Queue", "metadata": {"name": f"{prefix}-warm"},
            "spec": {"warmPods": WARM, "warmLibraries": ["smartnoise-sql"]}})
        await run_one(client, f"{prefix}-first", USERS[0])  # the first pod also pays for filling page caches
        cold = [await run_one(client, f"{prefix}-cold-{n}", USERS[0]) for n in range(queries)]
        await warm_ready(client, f"{prefix}-warm", WARM)
        warm = []
        for n in range(queries):
            warm.append(await run_one(client, f"{prefix}-warm-{n}", USERS[1], f"{prefix}-warm"))
            await warm_ready(client, f"{prefix}-warm", 2)
    return {"cold": cold, "warm": warm}


def node_agent(queries: int) -> dict[str, list[float]]:
    grants = {(user, "PENGUIN"): (1e6, 0.5) for user in USERS[:2]}
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-") as tmp, \
            LocalPlatform(Path(tmp), users=tuple(USERS[:2]), grants=grants, facade=False) as platform:
        return asyncio.run(latencies(platform.kube_config(), queries, "agent", grant=False))


def helm_install(cluster: LocalCluster) -> float:
    assert cluster.workdir is not None
    started = time.monotonic()
    home = cluster.workdir / "helm"
    subprocess.run([str(binaries.binary("helm")), "--kubeconfig", str(cluster.kubeconfig), "install", "dpkube",
                    "charts/dpkube", "--namespace", SYSTEM_NAMESPACE, "--create-namespace", "--wait",
                    "--timeout", "10m",
                    "--set", f"image.tag={images.CORE.split(':')[1]}", "--set", "image.pullPolicy=Never",
                    "--set", "demo.datasets=true",
                    "--set", "runner.resources.requests.cpu=100m",
                    "--set-json", "queues=" + json.dumps([images.core_default_queue()])],
                   cwd=REPO, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    return time.monotonic() - started


def real_cluster(queries: int, full: bool) -> tuple[dict[str, list[float]], images.Built, dict[str, float]]:
    """The latencies, the images, and the seconds of each step up to a ready release."""
    started = time.monotonic()
    built = images.cluster_images(REPO, full=full)
    with LocalCluster(images=(built.archive,)) as cluster:
        steps = {"images": built.seconds, **cluster.timings, "helm install --wait": helm_install(cluster),
                 "images + cluster + chart": time.monotonic() - started}
        steps.pop("total", None)
        results = asyncio.run(latencies(KubeConfig.from_kubeconfig(cluster.kubeconfig), queries, "real", grant=True))
        return results, built, steps


@contextlib.contextmanager
def empty_caches():
    """A cache and a Go build cache of their own, so that every binary and image is built from nothing."""
    with tempfile.TemporaryDirectory(prefix="dpkube-cold-") as tmp:
        saved = {key: os.environ.get(key) for key in ("DPKUBE_CACHE_DIR", "GOCACHE")}
        os.environ.update(DPKUBE_CACHE_DIR=f"{tmp}/cache", GOCACHE=f"{tmp}/go-build")
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="build every binary and image from nothing first")
    parser.add_argument("--full", action="store_true", help=f"also build and import {images.FULL} (torch)")
    args = parser.parse_args()
    agent = node_agent(args.queries)
    with empty_caches() if args.cold else contextlib.nullcontext():
        real, built, steps = real_cluster(args.queries, args.full)
    print(f"{'query latency, creation -> Succeeded':40} {'node agent':>12} {'real node':>12} {'ratio':>8}")
    for kind in ("cold", "warm"):
        for label, pick in (("p50", statistics.median), ("p95", lambda v: percentile(v, 0.95))):
            a, r = pick(agent[kind]), pick(real[kind])
            print(f"{f'{kind} pod {label} ({args.queries} queries)':40} {a:11.2f}s {r:11.2f}s {r / a:7.2f}x")
    print()
    print(f"{'image':40} {'bytes':>12}")
    for reference, size in built.sizes.items():
        print(f"{reference:40} {size / 1e9:10.2f}GB")
    if images.FULL in built.sizes:
        print(f"{'ratio full / core':40} {built.sizes[images.FULL] / built.sizes[images.CORE]:11.2f}x")
    print(f"(base {built.base}; torch from {built.torch_index or 'nowhere: core image only'})")
    print()
    print(f"{'real cluster start (' + ('cold' if args.cold else 'caches as found') + ')':40} {'seconds':>12}")
    for step, seconds in steps.items():
        print(f"{step:40} {seconds:11.0f}s")


if __name__ == "__main__":
    main()
