"""The platform for operator tests: the operator (a real process) and the demo datasets in its namespace."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dpkube.controlplane.local import LocalControlPlane, free_port
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.k8s.install import install
from dpkube.models.kinds import QUEUE

SYSTEM_NAMESPACE = "dpkube-system"


@pytest.fixture(scope="session")
async def system_namespace(admin: KubeClient, crds: None) -> str:
    """The operator's namespace with the demo datasets."""
    await install(admin, SYSTEM_NAMESPACE, [], demo=True)
    return SYSTEM_NAMESPACE


@pytest.fixture(scope="session")
def platform_env(control_plane: LocalControlPlane) -> dict[str, str]:
    """The environment of the platform's processes (one claim port per session, on loopback)."""
    claim_port = free_port()
    return {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "DPKUBE_SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim_port}",
        "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim_port}",
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


@pytest.fixture
async def create(admin: KubeClient, namespace: str) -> AsyncIterator[Any]:
    async def make(body: dict[str, Any]) -> dict[str, Any]:
        if body["kind"] == "Queue":
            return await admin.create(QUEUE.api_path(SYSTEM_NAMESPACE), body)
        return await admin.create(f"/apis/dpkube.io/v1alpha1/namespaces/{namespace}/"
                                  f"{'dpqueries' if body['kind'] == 'DPQuery' else 'experiments'}", body)

    yield make
