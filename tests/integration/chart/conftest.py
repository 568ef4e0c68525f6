"""The chart installed with the real `helm` into a control plane of its own, and the platform run with the
identities the chart created: the operator and the facade authenticate with their ServiceAccounts' tokens.

A control plane of its own, because the session's already holds dpkube's cluster-wide objects (made by
`install()`), which Helm would refuse to adopt. Its audit log records every request and its answer.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import yaml

from dpkube.cli.manifests import CHART
from dpkube.controlplane.local import ADMIN, LocalControlPlane, free_port
from dpkube.controlplane.platform import FACADE_READY_SECONDS
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s import policy
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.k8s.install import ensure_namespace
from dpkube_testing.chart import (
    API_ACCOUNT,
    OPERATOR_ACCOUNT,
    RELEASE,
    SYSTEM,
    Platform,
    Release,
    account_token,
    container_env,
    helm,
)


@pytest.fixture(scope="package")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    workdir = tmp_path_factory.mktemp("chart")
    plane = LocalControlPlane(workdir / "controlplane", users=("alice", "bob"), audit=True).start()
    try:
        installed = helm(plane, workdir, "install", RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
                         "--set", "demo.datasets=true",
                         "--set", "experiments[0].name=penguin-study",
                         "--set", "experiments[0].spec.displayName=penguin_study")
        assert installed.returncode == 0, installed.stderr
        manifest = helm(plane, workdir, "get", "manifest", RELEASE, "--namespace", SYSTEM)
        assert manifest.returncode == 0, manifest.stderr
        yield Release(plane, [d for d in yaml.safe_load_all(manifest.stdout) if d], workdir)
    finally:
        plane.stop()


@pytest.fixture(scope="package")
async def cluster_admin(release: Release) -> AsyncIterator[KubeClient]:
    async with KubeClient(KubeConfig.from_kubeconfig(release.plane.kubeconfig)) as client:
        yield client


@pytest.fixture(scope="package")
async def platform(release: Release, cluster_admin: KubeClient) -> AsyncIterator[Platform]:
    """Operator and facade with the chart's environment and ServiceAccount tokens; the node agent (kubelet's
    stand-in) runs query pods with node credentials, as a kubelet would."""
    workdir = release.workdir
    operator_config = release.account_kubeconfig(OPERATOR_ACCOUNT, await account_token(cluster_admin,
                                                                                        OPERATOR_ACCOUNT))
    api_config = release.account_kubeconfig(API_ACCOUNT, await account_token(cluster_admin, API_ACCOUNT))
    claim, health, http = free_port(), free_port(), free_port()
    base = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "PYTHONUNBUFFERED": "1"}
    operator_env = {**base, **container_env(release.deployment("dpkube-operator"), {
        "KUBECONFIG": str(operator_config), "POD_NAME": "dpkube-operator-0",
        "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim}", "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim}",
        "DPKUBE_HEALTH_LISTEN": f"127.0.0.1:{health}", "DPKUBE_LEASE_DURATION_SECONDS": "4",
        "DPKUBE_RENEW_DEADLINE_SECONDS": "3", "DPKUBE_RETRY_PERIOD_SECONDS": "1",
        "DPKUBE_LEDGER_AUDIT_SECONDS": "1"})}
    operator = ChildProcess("operator", [sys.executable, "-m", "dpkube.operator"], workdir / "operator.log",
                            operator_env).start()
    agent_env = {**base, "KUBECONFIG": str(release.plane.kubeconfig), "DPKUBE_SYSTEM_NAMESPACE": SYSTEM}
    agent = ChildProcess("nodeagent", [sys.executable, "-m", "dpkube.nodeagent", "--workdir", str(workdir / "agent")],
                         workdir / "nodeagent.log", agent_env).start()
    facade_deployment = release.deployment("dpkube-api")
    command = facade_deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    argv = [sys.executable, "-m", *command[:command.index("--host")], "--host", "127.0.0.1", "--port", str(http)]
    facade = ChildProcess("facade", argv, workdir / "facade.log",
                          {**base, **container_env(facade_deployment, {"KUBECONFIG": str(api_config)})}).start()
    try:
        operator.wait_until_ok(f"http://127.0.0.1:{claim}/healthz", timeout=90)
        facade.wait_until_ok(f"http://127.0.0.1:{http}/readyz", timeout=FACADE_READY_SECONDS)
        yield Platform(f"http://127.0.0.1:{http}", operator, facade)
    finally:
        for child in (facade, agent, operator):
            child.stop()


@pytest.fixture(scope="package")
async def homes(cluster_admin: KubeClient, release: Release) -> dict[str, str]:
    """alice and bob, kubectl users, each bound to the chart's user role in a namespace of their own."""
    homes = {}
    for user in ("alice", "bob"):
        namespace = f"home-{user}"
        await ensure_namespace(cluster_admin, namespace)
        await cluster_admin.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
                                   policy.user_binding(namespace, user))
        homes[user] = namespace
    return homes


@pytest.fixture(scope="package")
async def as_user(release: Release) -> AsyncIterator:
    """A client acting as a static user of the control plane, or with a given token."""
    clients: list[KubeClient] = []
    config = KubeConfig.from_kubeconfig(release.plane.kubeconfig)

    def make(user: str = ADMIN, token: str | None = None) -> KubeClient:
        client = KubeClient(config.with_token(token or release.plane.token(user)))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
