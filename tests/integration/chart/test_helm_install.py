"""`helm install` on a real API server, then the platform under the chart's own identities: its RBAC is
enough for the operator and the facade to do their jobs, and no more than that; users get what `dpkube-user`
says and nothing of anyone else's.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import httpx
import pytest

from dpkube.api.services.dioptra.ids import COUNTERS
from dpkube.cli.manifests import CHART
from dpkube.controlplane import binaries
from dpkube.k8s import policy
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import Forbidden, KubeClient, NotFound, core_path
from dpkube.k8s.isolation import POLICY_PATH, QUERY_POLICY
from dpkube.k8s.tokens import TOKEN_SECRET, create_token
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY
from dpkube_testing.builders import dpquery
from dpkube_testing.chart import (
    API_ACCOUNT,
    OPERATOR_ACCOUNT,
    QUERIES,
    SYSTEM,
    Platform,
    Release,
    account_token,
    helm,
)
from dpkube_testing.dioptra import tar_gz, workflow
from dpkube_testing.waiting import wait_for_phase

pytestmark = pytest.mark.slow
OPERATOR = f"system:serviceaccount:{SYSTEM}:{OPERATOR_ACCOUNT}"
FACADE = f"system:serviceaccount:{SYSTEM}:{API_ACCOUNT}"


def object_path(document: dict) -> str:
    api_version, kind = document["apiVersion"], document["kind"]
    plural = {"Ingress": "ingresses", "NetworkPolicy": "networkpolicies", "PodDisruptionBudget":
              "poddisruptionbudgets", "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
              "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings"}.get(kind, kind.lower() + "s")
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = document["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{scope}/{plural}/{document['metadata']['name']}"


async def test_every_object_of_the_release_exists(release: Release, cluster_admin: KubeClient) -> None:
    kinds = {document["kind"] for document in release.manifest}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "NetworkPolicy",
            "PodDisruptionBudget", "Namespace", "Dataset", "Queue", "Experiment"} <= kinds
    for document in release.manifest:
        found = await cluster_admin.get(object_path(document))
        assert found["metadata"]["name"] == document["metadata"]["name"]


def test_every_optional_object_passes_the_api_servers_dry_run(release: Release, homes: dict[str, str]) -> None:
    """What `helm install` did not create with the default values is validated by the same API server."""
    rendered = helm(release.plane, release.workdir, "template", "dpkube", str(CHART), "--namespace", SYSTEM,
                    "--kube-version", binaries.KUBERNETES_VERSION,
                    "--set", "api.ingress.enabled=true", "--set", "api.ingress.host=dp.example.org",
                    "--set", "api.ingress.tlsSecret=dp-tls", "--set", "api.service.type=LoadBalancer",
                    "--set", f"operator.namespaces={{{homes['alice']},{homes['bob']}}}",
                    "--set", "networkPolicies.datasetStoreCidrs={10.1.0.0/16}",
                    "--set", "networkPolicies.apiIngressFrom[0].namespaceSelector.matchLabels.team=stats",
                    "--set", "experiments[0].name=census", "--set", "demo.datasets=true")
    assert rendered.returncode == 0, rendered.stderr
    applied = subprocess.run([str(binaries.binary("kubectl")), "--kubeconfig", str(release.plane.kubeconfig),
                              "apply", "--dry-run=server", "-f", "-"], input=rendered.stdout,
                             capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    assert "ingress.networking.k8s.io/dpkube-api created (server dry run)" in applied.stdout


async def test_the_crds_come_with_the_chart(cluster_admin: KubeClient, release: Release) -> None:
    for plural in ("dpqueries", "experiments", "queues", "datasets"):
        crd = await cluster_admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.dpkube.io")
        assert crd["status"]["acceptedNames"]["plural"] == plural


async def test_kubectl_user_query_is_run_by_the_operators_service_account(
        platform: Platform, homes: dict[str, str], as_user, cluster_admin: KubeClient) -> None:
    await Budgets(cluster_admin, SYSTEM).grant("alice", "PENGUIN", 10.0, 0.005)
    alice = as_user("alice")
    name = f"sql-{uuid.uuid4().hex[:6]}"
    await alice.create(DPQUERY.api_path(homes["alice"]), dpquery(name, user="alice"))
    done = await wait_for_phase(alice, homes["alice"], name, "Succeeded", "Failed", "Rejected", timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    grant = await Budgets(cluster_admin, SYSTEM).find("alice", "PENGUIN")
    assert grant.ledger.spent.epsilon == pytest.approx(done["status"]["spent"]["epsilon"])
    assert done["status"]["spent"]["epsilon"] > 0
    policy = await cluster_admin.get(f"{POLICY_PATH.format(ns=homes['alice'])}/{QUERY_POLICY}")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]  # the operator's, wherever it runs pods


async def test_a_user_cannot_read_someone_elses_queries(homes: dict[str, str], as_user) -> None:
    with pytest.raises(Forbidden):
        await as_user("bob").list(DPQUERY.api_path(homes["alice"]))


async def test_a_user_cannot_submit_in_someone_elses_name(homes: dict[str, str], as_user) -> None:
    with pytest.raises(Forbidden, match=r"spec\.user must be your own identity"):
        await as_user("alice").create(DPQUERY.api_path(homes["alice"]), dpquery("as-bob", user="bob"))


async def test_a_user_cannot_write_a_querys_status(homes: dict[str, str], as_user) -> None:
    alice = as_user("alice")
    await alice.create(DPQUERY.api_path(homes["alice"]), dpquery("status-probe", user="alice"))
    with pytest.raises(Forbidden):
        await alice.patch(DPQUERY.api_path(homes["alice"], "status-probe") + "/status",
                          {"status": {"phase": "Succeeded"}})


async def test_a_user_cannot_touch_budgets(as_user) -> None:
    alice = as_user("alice")
    with pytest.raises(Forbidden):
        await alice.list(core_path("configmaps", SYSTEM))
    with pytest.raises(Forbidden):
        await alice.create(core_path("configmaps", SYSTEM), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "budget-alice-more",
                                                                  "labels": {"dpkube.io/budget": "grant"}},
            "data": {"user": "alice", "dataset": "PENGUIN", "initialEpsilon": "1000"}})


async def test_the_facade_serves_lomas_queries_with_its_service_account(
        platform: Platform, cluster_admin: KubeClient) -> None:
    user = f"lomas-{uuid.uuid4().hex[:6]}"
    await Budgets(cluster_admin, SYSTEM).grant(user, "PENGUIN", 10.0, 0.005)
    token = await create_token(cluster_admin, SYSTEM, user)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=150) as http:
        answer = await http.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY)
        assert answer.status_code == 200, answer.text
        spent = await http.post("/get_total_spent_budget", json=examples.GET_DB_DATA)
        assert spent.json()["total_spent_epsilon"] > 0


async def test_the_facade_takes_a_kubectl_users_cluster_token(platform: Platform, release: Release,
                                                             cluster_admin: KubeClient) -> None:
    await Budgets(cluster_admin, SYSTEM).grant("bob", "PENGUIN", 1.0, 0.001)
    headers = {"Authorization": f"Bearer {release.plane.token('bob')}"}
    async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=30) as http:
        answer = await http.post("/get_dataset_metadata", json=examples.GET_DB_DATA)
    assert answer.status_code == 200, answer.text


async def test_the_facade_serves_dioptra_with_its_service_account(
        platform: Platform, cluster_admin: KubeClient) -> None:
    user = f"dioptra-{uuid.uuid4().hex[:6]}"
    await Budgets(cluster_admin, SYSTEM).grant(user, "PENGUIN", 10.0, 0.005)
    caller = {"Authorization": f"Bearer {await create_token(cluster_admin, SYSTEM, user)}"}
    admin = {"Authorization": f"Bearer {await create_token(cluster_admin, SYSTEM, 'ops', admin=True)}"}
    async with httpx.AsyncClient(base_url=f"{platform.url}/api/v0", timeout=150) as http:
        queue = await http.post("/queue/", json={"name": f"cpu_{uuid.uuid4().hex[:6]}"}, headers=admin)
        assert queue.status_code == 200, queue.text
        assert (await http.put(f"/queue/name/{queue.json()['name']}/lock", headers=admin)).status_code == 200
        assert (await http.delete(f"/queue/name/{queue.json()['name']}/lock", headers=admin)).status_code == 200
        plugin = f"p_{uuid.uuid4().hex[:6]}"
        upload = await http.post("/taskPlugin/", headers=admin, data={"taskPluginName": plugin},
                                 files={"taskPluginFile": (f"{plugin}.tar.gz", tar_gz(
                                     {"p/__init__.py": b"", "p/tasks.py": b"def task():\n    return 1\n"}))})
        assert upload.status_code == 200, upload.text
        assert (await http.delete(f"/taskPlugin/dioptra_custom/{plugin}", headers=admin)).status_code == 200
        experiment = await http.post("/experiment/", json={"name": "Penguins"}, headers=caller)
        assert experiment.status_code == 200, experiment.text
        listed = {e["name"] for e in (await http.get("/experiment/", headers=caller)).json()}
        assert {"penguins", "penguin_study"} <= listed  # the chart's experiment too
        job = await http.post("/job/", headers=caller, files={"workflow": ("workflows.tar.gz", workflow())},
                              data={"experimentName": "penguin_study", "queue": "default", "timeout": "1h",
                                    "entryPoint": "penguin_count"})
        assert job.status_code == 200, job.text
        for _ in range(300):
            status = (await http.get(f"/job/{job.json()['jobId']}", headers=caller)).json()["status"]
            if status in {"finished", "failed"}:
                break
            await asyncio.sleep(0.3)
        assert status == "finished"


async def test_the_facade_cannot_write_a_budget_grant(platform: Platform, release: Release, as_user,
                                                      cluster_admin: KubeClient) -> None:
    facade = as_user(token=await account_token(cluster_admin, API_ACCOUNT))
    await Budgets(cluster_admin, SYSTEM).grant("carol", "PENGUIN", 1.0, 0.001)
    victim = await Budgets(cluster_admin, SYSTEM).find("carol", "PENGUIN")
    with pytest.raises(Forbidden, match="budget grants are changed by admins and the operator only"):
        await facade.delete(core_path("configmaps", SYSTEM, victim.name))
    with pytest.raises(Forbidden, match="budget grants"):
        await facade.create(core_path("configmaps", SYSTEM), {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "budget-mallory", "labels": {"dpkube.io/budget": "grant"}},
            "data": {"user": "mallory", "dataset": "PENGUIN", "initialEpsilon": "1000"}})
    with pytest.raises(NotFound):
        await cluster_admin.get(core_path("configmaps", SYSTEM, "budget-mallory"))


def can_i(release: Release, who: str, verb: str, resource: str, namespace: str | None) -> bool:
    resource, _, subresource = resource.partition("/")
    argv = [str(binaries.binary("kubectl")), "--kubeconfig", str(release.plane.kubeconfig), "auth", "can-i", verb,
            resource, f"--as={who}", *(["--namespace", namespace] if namespace else ["--all-namespaces"]),
            *([f"--subresource={subresource}"] if subresource else [])]
    return subprocess.run(argv, capture_output=True, text=True).stdout.strip() == "yes"


@pytest.mark.parametrize(("who", "verb", "resource", "namespace"), [
    (OPERATOR, "create", "clusterrolebindings", None),
    (OPERATOR, "update", "dpqueries.dpkube.io", "home-alice"),
    (OPERATOR, "create", "namespaces", None),
    (OPERATOR, "update", "validatingadmissionpolicies", None),
    (OPERATOR, "update", "customresourcedefinitions", None),
    (OPERATOR, "create", "pods/exec", "home-alice"),
    (OPERATOR, "update", "leases", "kube-system"),
    (FACADE, "get", "secrets", QUERIES),
    (FACADE, "list", "secrets", SYSTEM),
    (FACADE, "create", "pods", QUERIES),
    (FACADE, "patch", "dpqueries.dpkube.io/status", QUERIES),
    (FACADE, "delete", "dpqueries.dpkube.io", QUERIES),
    (FACADE, "create", "dpqueries.dpkube.io", "home-alice"),
    (FACADE, "update", "configmaps", SYSTEM),
    (FACADE, "delete", "queues.dpkube.io", SYSTEM),
    (FACADE, "create", "datasets.dpkube.io", SYSTEM),
    ("alice", "get", "pods", "home-alice"),
    ("alice", "get", "secrets", "home-alice"),
    ("alice", "update", "dpqueries.dpkube.io", "home-alice"),
    ("alice", "create", "queues.dpkube.io", SYSTEM),
], ids=lambda value: value.rsplit(":", 1)[-1] if isinstance(value, str) else str(value))
def test_roles_grant_nothing_beyond_the_job(release: Release, homes: dict[str, str], who: str, verb: str,
                                            resource: str, namespace: str | None) -> None:
    assert not can_i(release, who, verb, resource, namespace)


def test_no_request_of_the_operator_or_the_facade_was_forbidden(release: Release, platform: Platform) -> None:
    """Run last: everything the two accounts did during this module, judged by the API server's audit log."""
    forbidden = [
        (event["user"]["username"], event["verb"], event.get("objectRef", {}).get("resource"),
         event.get("objectRef", {}).get("subresource"), event.get("objectRef", {}).get("namespace"))
        for event in release.plane.audit_events()
        if event["user"]["username"] in {OPERATOR, FACADE} and event.get("responseStatus", {}).get("code") == 403
        and not event.get("objectRef", {}).get("name", "").startswith("budget-")  # refused on purpose above
    ]
    used = {event["user"]["username"] for event in release.plane.audit_events()}
    assert {OPERATOR, FACADE} <= used
    assert forbidden == []


NOT_EXERCISED_HERE = {
    OPERATOR: {
        ("dpkube.io", "dpqueries", "delete"): "an Experiment's deletion deletes its queries",
        ("dpkube.io", "dpqueries", "get"): "a query this process holds no copy of is read (a resync, a queue's "
                                            "head, a conflicting finalizer write)",
        ("", "pods", "patch"): "a warm pod is labelled with the query it claimed",
        ("", "pods", "get"): "a warm pod is read when the version its pool's listing showed went stale; a query's "
                             "pod when no event of it is at hand",
        ("", "configmaps", "create"): "results over 32 KiB and plugin packages are kept in ConfigMaps",
        ("", "configmaps", "delete"): "an Experiment's deletion deletes its cap's books, once its queries are gone",
        ("", "secrets", "get"): "a dataset's credentials Secret is read to be copied next to its queries",
        ("", "secrets", "create"): "a dataset's credentials are copied next to its queries",
        ("", "secrets", "update"): "a changed credentials Secret replaces its copy",
        ("", "secrets", "delete"): "a credentials copy goes when no query of its namespace needs it",
        ("networking.k8s.io", "networkpolicies", "get"): "a query-pod policy that exists already is read back",
        ("networking.k8s.io", "networkpolicies", "update"): "a query-pod policy changed by hand is set back",
        ("dpkube.io", "datasets", "get"): "a dataset not yet in the operator's watch-fed view is read directly",
        ("dpkube.io", "queues", "get"): "a queue is read when a query is admitted or launched through it",
    },
    FACADE: {
        ("dpkube.io", "dpqueries", "get"): "a query route reads its query back when the watch ends first",
        ("dpkube.io", "datasets", "get"): "a dataset not yet in the facade's cache is read directly",
        ("dpkube.io", "queues", "get"): "a Dioptra queue is read by its id to lock it; the Lomas queue is read "
                                        "when the facade keeps no watch",
    },
}


def granted(account: str) -> set[tuple[str, str, str]]:
    rules = {OPERATOR: [*policy.operator_rules(), *policy.operator_system_rules()],
             FACADE: [*policy.api_rules(), *policy.api_system_rules(TOKEN_SECRET, COUNTERS),
                      *policy.api_cluster_rules()]}
    return {(group, resource, verb) for rule in rules[account] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


@pytest.mark.parametrize("account", [OPERATOR, FACADE], ids=["operator", "facade"])
def test_every_permission_granted_is_used_or_named_with_the_path_that_needs_it(
        release: Release, platform: Platform, account: str) -> None:
    """Run last: the API server's audit log of this module against the chart's rules."""
    used = set()
    for event in release.plane.audit_events():
        reference = event.get("objectRef", {})
        if event["user"]["username"] == account and reference.get("resource"):
            resource = reference["resource"] + (f"/{reference['subresource']}" if reference.get("subresource") else "")
            used.add((reference.get("apiGroup", ""), resource, event["verb"]))
    unused = granted(account) - used - set(NOT_EXERCISED_HERE[account])
    assert unused == set()
