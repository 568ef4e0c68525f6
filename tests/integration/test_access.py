"""Who may do what, proven on the real API server by acting as different users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from dpkube.controlplane.local import LocalControlPlane
from dpkube.k8s import policy
from dpkube.k8s.client import Forbidden, Invalid, KubeClient, KubeConfig, core_path
from dpkube.k8s.install import ensure_namespace, install_access
from dpkube.models.crd import GROUP
from dpkube.models.kinds import DPQUERY
from dpkube_testing.builders import dpquery


@pytest.fixture(scope="session")
async def access(admin: KubeClient, crds: None) -> None:
    await install_access(admin, "dpkube-system")
    await ensure_namespace(admin, "dpkube-system")


@pytest.fixture
async def home(admin: KubeClient, access: None) -> str:
    """alice's own namespace, with the user role bound to her, once the API server's authorizer has seen the
    binding (it learns of bindings from a watch, so a request made at once may still be refused)."""
    name = f"home-{uuid.uuid4().hex[:8]}"
    await ensure_namespace(admin, name)
    await admin.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings",
                       policy.user_binding(name, "alice"))
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": "alice", "resourceAttributes": {"namespace": name, "verb": "create", "group": GROUP,
                                                "resource": DPQUERY.plural}}}
    for _ in range(100):
        answer = await admin.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        if answer.get("status", {}).get("allowed"):
            return name
        await asyncio.sleep(0.1)
    raise AssertionError(f"alice's binding in {name} never took effect")


@pytest.fixture
async def as_user(control_plane: LocalControlPlane, kube_config: KubeConfig) -> AsyncIterator:
    clients: list[KubeClient] = []

    def make(user: str) -> KubeClient:
        client = KubeClient(kube_config.with_token(control_plane.token(user)))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_a_user_can_submit_a_query_in_their_own_name(home: str, as_user) -> None:
    alice = as_user("alice")
    created = await alice.create(DPQUERY.api_path(home), dpquery("mine", user="alice"))
    assert created["spec"]["user"] == "alice"


async def test_a_user_cannot_submit_a_query_in_someone_elses_name(home: str, as_user) -> None:
    alice = as_user("alice")
    names = iter(f"theirs-{n}" for n in range(1000))
    refused = None
    for _ in range(100):
        try:
            await alice.create(DPQUERY.api_path(home), dpquery(next(names), user="bob"))
        except (Forbidden, Invalid) as exc:
            refused = exc
            break
        await asyncio.sleep(0.1)
    assert refused is not None, "the admission policy never refused"
    assert "spec.user must be your own identity alice, not bob" in refused.message


async def test_an_admin_may_submit_for_anyone(admin: KubeClient, home: str, access: None) -> None:
    created = await admin.create(DPQUERY.api_path(home), dpquery("on-behalf", user="bob"))
    assert created["spec"]["user"] == "bob"


async def test_a_user_cannot_read_another_users_namespace(home: str, as_user) -> None:
    with pytest.raises(Forbidden):
        await as_user("bob").list(DPQUERY.api_path(home))


async def test_a_user_cannot_write_query_status(home: str, as_user) -> None:
    alice = as_user("alice")
    await alice.create(DPQUERY.api_path(home), dpquery("honest", user="alice"))
    with pytest.raises(Forbidden):
        await alice.patch(DPQUERY.api_path(home, "honest") + "/status", {"status": {"phase": "Succeeded"}})


async def test_a_user_cannot_change_or_unfinalize_a_query(home: str, as_user) -> None:
    alice = as_user("alice")
    await alice.create(DPQUERY.api_path(home), dpquery("fixed", user="alice"))
    with pytest.raises(Forbidden):
        await alice.patch(DPQUERY.api_path(home, "fixed"), {"metadata": {"finalizers": []}})


async def test_a_user_cannot_touch_budgets(as_user, access: None) -> None:
    alice = as_user("alice")
    with pytest.raises(Forbidden):
        await alice.list(core_path("configmaps", "dpkube-system"))
    with pytest.raises(Forbidden):
        await alice.create(core_path("configmaps", "dpkube-system"), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "budget-mine"},
            "data": {"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "1000"}})


async def test_a_user_cannot_read_results_secrets_pods_or_logs_of_their_queries(home: str, as_user) -> None:
    alice = as_user("alice")
    for path in (core_path("secrets", home), core_path("pods", home)):
        with pytest.raises(Forbidden):
            await alice.list(path)
