"""The Helm chart renders what an admin expects, and refuses bad values before anything reaches a cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from dpkube.cli.manifests import CHART, render_chart
from dpkube.controlplane import binaries
from dpkube.k8s import policy
from dpkube.models.chart import ChartValues
from dpkube.models.queue import DEFAULT_QUEUE

REPO = Path(__file__).resolve().parents[3]
KUBE_VERSION = binaries.KUBERNETES_VERSION.lstrip("v")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binaries.binary("helm")), *args], capture_output=True, text=True, cwd=REPO)


def render(*settings: str) -> list[dict]:
    argv = ["template", "dpkube", str(CHART), "--namespace", "dpkube-system", "--kube-version", KUBE_VERSION]
    for setting in settings:
        argv += ["--set", setting]
    result = helm(*argv)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(documents: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def test_generated_chart_files_are_fresh() -> None:
    committed = {name: (REPO / CHART / name).read_text() for name in render_chart()}
    assert committed == render_chart(), "charts/dpkube is stale: run `make crds`"


def test_chart_crds_are_the_repository_crds() -> None:
    for path in (REPO / "crds").glob("*.yaml"):
        assert (REPO / CHART / "crds" / path.name).read_text() == path.read_text()


def test_helm_lint_is_clean() -> None:
    result = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_values_yaml_holds_the_models_defaults() -> None:
    values = yaml.safe_load((REPO / CHART / "values.yaml").read_text())
    assert ChartValues.model_validate(values).model_dump(by_alias=True) == ChartValues().model_dump(by_alias=True)


@pytest.mark.parametrize(("setting", "complaint"), [
    ("api.trustedHeadr=true", "additional properties 'trustedHeadr' not allowed"),
    ("api.replicas=0", "/api/replicas"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("runner.resources.limits.memory=lots", "/runner/resources/limits/memory"),
    ("queues[0].name=Not_A_Name", "/queues/0/name"),
])
def test_bad_values_are_refused_with_the_path_at_fault(setting: str, complaint: str) -> None:
    result = helm("template", "dpkube", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_two_operators_without_leader_election_are_refused() -> None:
    result = helm("template", "dpkube", str(CHART), "--kube-version", KUBE_VERSION,
                  "--set", "operator.leaderElection.enabled=false")
    assert result.returncode != 0
    assert "leaderElection" in result.stderr


def test_trusted_header_auth_is_off_by_default() -> None:
    (api,) = find(render(), "Deployment", "dpkube-api")
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DPKUBE_TRUSTED_HEADER"] == "false"


def test_the_facades_lomas_queries_go_to_the_default_queue_which_warms_the_core_libraries_only() -> None:
    documents = render()
    (api,) = find(documents, "Deployment", "dpkube-api")
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    (queue,) = find(documents, "Queue", env["DPKUBE_LOMAS_QUEUE"])
    assert queue["metadata"]["name"] == DEFAULT_QUEUE
    assert queue["spec"]["warmLibraries"] == ["smartnoise-sql", "opendp", "diffprivlib"]


def test_every_container_runs_as_non_root_with_limits() -> None:
    for deployment in find(render(), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_roles_carry_the_projects_access_policy() -> None:
    documents = render()
    assert find(documents, "ClusterRole", "dpkube-user")[0]["rules"] == policy.user_role()["rules"]
    assert find(documents, "ClusterRole", "dpkube-admin")[0]["rules"] == policy.admin_role()["rules"]
    assert find(documents, "ClusterRole", "dpkube-operator")[0]["rules"] == policy.operator_rules()


def test_admission_policy_exempts_exactly_the_releases_own_accounts() -> None:
    trusted = ["system:serviceaccount:dpkube-system:dpkube-api", "system:serviceaccount:dpkube-system:dpkube-operator"]
    (rendered,) = find(render(), "ValidatingAdmissionPolicy", "dpkube-query-owner")
    assert rendered["spec"] == policy.query_owner_policy(trusted)[0]["spec"]
    (guard,) = find(render(), "ValidatingAdmissionPolicy", "dpkube-budget-grants")
    assert guard["spec"] == policy.grant_guard_policy(trusted[:1])[0]["spec"]


def test_admins_group_reaches_the_policy_and_the_facade() -> None:
    documents = render("adminsGroup=stats-office:admins")
    (rendered,) = find(documents, "ValidatingAdmissionPolicy", "dpkube-query-owner")
    variables = {v["name"]: v["expression"] for v in rendered["spec"]["variables"]}
    assert json.loads(variables["adminsGroup"]) == "stats-office:admins"
    (api,) = find(documents, "Deployment", "dpkube-api")
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DPKUBE_ADMIN_GROUP"] == "stats-office:admins"


def test_operator_limited_to_namespaces_is_bound_there_only() -> None:
    documents = render("operator.namespaces={team-a,team-b}")
    assert not find(documents, "ClusterRoleBinding", "dpkube-operator")
    bound = {d["metadata"]["namespace"] for d in find(documents, "RoleBinding", "dpkube-operator")}
    assert bound == {"team-a", "team-b", "dpkube-system"}


def test_the_operator_is_told_where_query_pods_may_connect() -> None:
    (operator,) = find(render("networkPolicies.datasetStoreCidrs={10.1.0.0/16}"), "Deployment", "dpkube-operator")
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DPKUBE_QUERY_NETWORK_POLICY"] == "true"
    assert json.loads(env["DPKUBE_DATASET_STORE_CIDRS"]) == ["10.1.0.0/16"]
    labels = json.loads(env["DPKUBE_OPERATOR_POD_LABELS"])
    assert labels.items() <= operator["spec"]["template"]["metadata"]["labels"].items()


def test_the_chart_leaves_the_query_pods_policy_to_the_operator() -> None:
    assert not find(render(), "NetworkPolicy", "dpkube-query-pods")


def test_pod_disruption_budgets_only_with_replicas_to_spare() -> None:
    assert {d["metadata"]["name"] for d in find(render(), "PodDisruptionBudget")} == {"dpkube-operator", "dpkube-api"}
    assert not find(render("api.replicas=1", "operator.replicas=1"), "PodDisruptionBudget")


def test_ingress_is_optional() -> None:
    assert not find(render(), "Ingress")
    (ingress,) = find(render("api.ingress.enabled=true", "api.ingress.host=dp.example.org",
                             "api.ingress.tlsSecret=dp-tls"), "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "dp.example.org"
    assert ingress["spec"]["tls"][0]["secretName"] == "dp-tls"


def test_demo_datasets_queues_and_experiments_are_values() -> None:
    assert not find(render(), "Dataset")
    documents = render("demo.datasets=true", "experiments[0].name=penguin-study",
                       "experiments[0].spec.displayName=penguin_study")
    assert {d["spec"]["displayName"] for d in find(documents, "Dataset")} == {"PENGUIN", "TITANIC",
                                                                              "FSO_INCOME_SYNTHETIC"}
    assert [q["metadata"]["name"] for q in find(documents, "Queue")] == ["default"]
    (experiment,) = find(documents, "Experiment")
    assert experiment["metadata"]["namespace"] == "dpkube"
