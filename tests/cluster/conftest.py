"""The real-cluster tier: dpkube's images built from the Dockerfile, a single-node cluster on this machine
(kubelet, containerd and runc, a CNI bridge, kube-proxy, CoreDNS, kube-router's NetworkPolicy controller),
and the chart installed on it with helm. Needs root and `make prereqs`; `make test` provides both in CI.

The chart runs on the core image (no torch): operator, facade and query pods. DPKUBE_CLUSTER_SYNTH=1 also
builds and imports the full image (5.4 GB with PyPI's torch and its CUDA libraries) for the operator and the
facade, which price synthetic-data queries with torch, and for a `synth` queue's pods.

Tests that change the release (upgrade, uninstall) or remove the cluster carry `pytest.mark.last(n)` and
run after every other test of the tier, in the order of n.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube_testing.realcluster import (
    QUERIES,
    RELEASE,
    REPO,
    SYNTH,
    SYNTH_QUEUE,
    SYSTEM,
    Release,
    get_json,
    helm,
    kubectl,
    wait_until,
)

E2E_USER = "e2e"
VALUES = [
    "--set", f"image.repository={images.REPOSITORY}", "--set", "image.pullPolicy=Never",
    "--set", "demo.datasets=true",
    # Two cores for everything: small requests, so that 4 queries, 2 operators, 2 facades and DNS fit.
    "--set", "runner.resources.requests.cpu=100m", "--set", "runner.resources.requests.memory=256Mi",
    # The chart's default queue, whose pods (the Lomas routes' warm runners) run the core image: they import only
    # what that image has (no torch); with SYNTH, a queue whose pods run the full one.
    "--set-json", "queues=" + json.dumps([
        images.core_default_queue(),
        *([{"name": SYNTH_QUEUE, "spec": {"displayName": SYNTH_QUEUE, "image": images.FULL}}] if SYNTH else [])]),
    *(["--set", f"image.tag={images.FULL.split(':')[1]}", "--set", f"runner.image={images.CORE}"] if SYNTH else
      ["--set", f"image.tag={images.CORE.split(':')[1]}"]),
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tier first (the cluster is gone before the other tiers run), its `last(n)` tests at its end."""
    def order(item: pytest.Item) -> int:
        mark = item.get_closest_marker("last")
        return mark.args[0] if mark else 0

    here = Path(__file__).parent
    tier = sorted((i for i in items if i.path.is_relative_to(here)), key=order)
    items[:] = tier + [i for i in items if not i.path.is_relative_to(here)]


def _say(request: pytest.FixtureRequest, message: str) -> None:
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{message}", flush=True)


@pytest.fixture(scope="session")
def built_images(request: pytest.FixtureRequest) -> images.Built:
    """Both images of the current tree (built with Docker on first use, then taken from the cache)."""
    built = images.cluster_images(REPO, full=SYNTH, log=lambda m: _say(request, f"image: {m}"))
    _say(request, f"images: {built.sizes} (base {built.base}, torch from {built.torch_index}, {built.seconds:.0f}s)")
    return built


@pytest.fixture(scope="session")
def cluster(built_images: images.Built, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    cluster = LocalCluster(images=(built_images.archive,), log=lambda m: _say(request, f"cluster: {m}"))
    cluster.start()
    _say(request, "cluster start: " + ", ".join(f"{k} {v:.0f}s" for k, v in cluster.timings.items()))
    try:
        yield cluster
    finally:
        cluster.stop()


def _dpkube(cluster: LocalCluster, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dpkube.cli", *args, "--kubeconfig", str(cluster.kubeconfig)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="session")
def release(cluster: LocalCluster) -> Release:
    """`helm install` of charts/dpkube with the local images, waited for; a budget and tokens for the e2e user."""
    started = time.monotonic()
    installed = helm(cluster, "install", RELEASE, "charts/dpkube", "--namespace", SYSTEM, "--create-namespace",
                     *VALUES, "--wait", "--timeout", "10m")
    assert installed.returncode == 0, installed.stderr + kubectl(cluster, "get", "pods", "-A", "-o", "wide").stdout
    _dpkube(cluster, "budget", "grant", E2E_USER, "PENGUIN", "--epsilon", "10", "--delta", "0.005")
    token = _dpkube(cluster, "token", "create", E2E_USER)
    admin_token = _dpkube(cluster, "token", "create", f"{E2E_USER}-admin", "--admin")
    service = get_json(cluster, "service", f"{RELEASE}-api", "-n", SYSTEM)
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
    wait_until(lambda: subprocess.run(["curl", "-fsS", "-o", "/dev/null", "--max-time", "2", f"{url}/readyz"])
               .returncode == 0, 120, f"the facade at {url} (its Service, through kube-proxy)")
    print(f"helm install and facade ready in {time.monotonic() - started:.0f}s")
    return Release(cluster, VALUES, url, E2E_USER, token, admin_token)


@pytest.fixture(scope="session")
async def admin(cluster: LocalCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient(KubeConfig.from_kubeconfig(cluster.kubeconfig)) as client:
        yield client


@pytest.fixture(scope="session")
def query_namespace(release: Release) -> str:
    return QUERIES


@pytest.fixture(scope="session")
def as_user(cluster: LocalCluster):
    """kubectl as a static user of the control plane (alice, bob)."""
    def run(user: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return kubectl(cluster, *args, user=user, input=input)
    return run

