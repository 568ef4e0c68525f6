"""Shared fixtures: a real etcd + kube-apiserver for the whole session, clients acting as distinct users, and the
platform (demo datasets, operator, node agent) for the tests that need it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dpkube.controlplane import binaries
from dpkube.controlplane.local import ADMIN, LocalControlPlane, free_port
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, KubeConfig, core_path
from dpkube.k8s.crds import apply_crds
from dpkube.k8s.install import install

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LocalControlPlane]:
    """One real control plane for the session (the envtest approach: no kubelet)."""
    started = time.monotonic()
    plane = LocalControlPlane(tmp_path_factory.mktemp("controlplane")).start()
    version = subprocess.run(
        [str(binaries.binary("kubectl")), "--kubeconfig", str(plane.kubeconfig), "version"],
        capture_output=True, text=True, check=True,
    ).stdout.replace("\n", "; ")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nreal control plane at {plane.url} ready in {time.monotonic() - started:.1f}s: {version}")
    yield plane
    peaks = ", ".join(f"{name} {size / 2**20:.0f} MiB" for name, size in plane.peak_memory_bytes().items())
    with capture.global_and_fixture_disabled():
        print(f"\ncontrol plane peak memory: {peaks}")
    plane.stop()


@pytest.fixture(scope="session")
def kube_config(control_plane: LocalControlPlane) -> KubeConfig:
    """Admin access to the session's API server."""
    return KubeConfig.from_kubeconfig(control_plane.kubeconfig)


@pytest.fixture(scope="session")
async def admin(kube_config: KubeConfig) -> AsyncIterator[KubeClient]:
    async with KubeClient(kube_config) as client:
        yield client


@pytest.fixture(scope="session")
async def crds(admin: KubeClient) -> None:
    """dpkube's CRDs, installed once per session."""
    await apply_crds(admin)


@pytest.fixture
async def namespace(admin: KubeClient, crds: None) -> AsyncIterator[str]:
    """A fresh namespace per test (there is no namespace controller: objects stay, names never clash)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await admin.create(core_path("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name


@pytest.fixture(scope="session")
def kubectl(control_plane: LocalControlPlane, crds: None):
    """Run the real kubectl as the admin (or as another user with `as_user=`)."""
    kubectl_bin = str(binaries.binary("kubectl"))

    def run(*args: str, as_user: str = ADMIN, check: bool = False) -> subprocess.CompletedProcess[str]:
        kubeconfig = control_plane.workdir / f"kubeconfig-{as_user}"
        if not kubeconfig.exists():
            control_plane.write_kubeconfig(kubeconfig, as_user)
        return subprocess.run(
            [kubectl_bin, "--kubeconfig", str(kubeconfig), *args],
            capture_output=True, text=True, check=check, cwd=REPO,
        )

    return run


SYSTEM_NAMESPACE = "dpkube-system"


@pytest.fixture(scope="session")
async def system_namespace(admin: KubeClient, crds: None) -> str:
    """The operator's namespace with the demo datasets."""
    await install(admin, SYSTEM_NAMESPACE, [], demo=True)
    return SYSTEM_NAMESPACE


@pytest.fixture(scope="session")
def platform_env(control_plane: LocalControlPlane) -> dict[str, str]:
    """The environment of the platform's processes (one claim port per session, on loopback)."""
    claim_port, health_port = free_port(), free_port()
    return {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "DPKUBE_SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim_port}",
        "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim_port}",
        "DPKUBE_HEALTH_LISTEN": f"127.0.0.1:{health_port}",
        "DPKUBE_LEDGER_AUDIT_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def operator_process(control_plane: LocalControlPlane, system_namespace: str,
                     platform_env: dict[str, str]) -> Iterator[ChildProcess]:
    process = ChildProcess("operator", [sys.executable, "-m", "dpkube.operator"],
                           control_plane.workdir / "operator.log", platform_env).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def node_agent(control_plane: LocalControlPlane, platform_env: dict[str, str]) -> Iterator[ChildProcess]:
    argv = [sys.executable, "-m", "dpkube.nodeagent", "--workdir", str(control_plane.workdir / "agent")]
    process = ChildProcess("nodeagent", argv, control_plane.workdir / "nodeagent.log", platform_env).start()
    yield process
    process.stop()


@pytest.fixture
async def budgets(admin: KubeClient, system_namespace: str) -> Budgets:
    return Budgets(admin, system_namespace)
