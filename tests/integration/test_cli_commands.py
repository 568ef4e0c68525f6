"""The `dpkube` commands against the real platform: admins grant, issue tokens and lock queues on the
cluster; users submit, list and read budgets through the facade, or submit with `--kube`.

Commands run in worker threads (they start their own event loops); the facade is served over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dpkube.budget.ledger import Accounting
from dpkube.cli.__main__ import main
from dpkube.client import Client
from dpkube.k8s.budgets import Budgets, GrantNotFound
from dpkube.k8s.client import KubeClient
from dpkube.models import examples
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube_testing.served import served_facade, served_settings


@pytest.fixture
def facade_url(namespace: str, system_namespace: str, control_plane) -> Iterator[str]:
    with served_facade(served_settings(namespace, system_namespace, str(control_plane.kubeconfig))) as url:
        yield url


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, control_plane, system_namespace: str, namespace: str) -> None:
    """The variables `make dev` writes, as the admin's kubeconfig; no facade credentials yet."""
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.setenv("DPKUBE_SYSTEM_NAMESPACE", system_namespace)
    monkeypatch.setenv("DPKUBE_QUERY_NAMESPACE", namespace)
    for name in ("DPKUBE_URL", "DPKUBE_TOKEN", "DPKUBE_USER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def platform(operator_process, node_agent) -> None:
    """Query pods run."""


async def dpkube(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def user_name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


async def new_user(capsys, epsilon: float = 10.0, delta: float = 0.005) -> tuple[str, str]:
    """An admin grants a fresh user a budget on PENGUIN and issues their token, with the CLI."""
    user = user_name()
    assert await dpkube("budget", "grant", user, "PENGUIN", "--epsilon", str(epsilon), "--delta", str(delta)) == 0
    assert await dpkube("token", "create", user) == 0
    token = capsys.readouterr().out.splitlines()[-1]
    return user, token


async def test_a_granted_user_with_a_new_token_reads_the_budget_through_the_facade(
        cli_env: None, facade_url: str, capsys) -> None:
    _, token = await new_user(capsys, epsilon=3.0, delta=0.001)
    assert token.startswith("dpk_")
    with Client(facade_url, token, "PENGUIN") as client:
        assert await asyncio.to_thread(client.get_initial_budget) == {"initial_epsilon": 3.0, "initial_delta": 0.001}
    assert await dpkube("budget", "show", "PENGUIN", "--url", facade_url, "--token", token) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["initial", "3", "0.001"] and lines[3].split() == ["remaining", "3", "0.001"]


async def test_an_admin_grants_a_zcdp_budget_in_rho(cli_env: None, system_namespace: str, admin: KubeClient,
                                                   capsys) -> None:
    user = user_name()
    assert await dpkube("budget", "grant", user, "PENGUIN", "--accounting", "zCDP", "--rho", "0.05",
                        "--delta", "1e-5") == 0
    assert capsys.readouterr().out.strip() == f"granted {user} rho 0.05, delta 1e-05 (zCDP) on PENGUIN"
    ledger = (await Budgets(admin, system_namespace).find(user, "PENGUIN")).ledger
    assert (ledger.accounting, ledger.initial_rho, ledger.initial.delta) == (Accounting.ZCDP, 0.05, 1e-5)


async def test_a_rho_without_zcdp_accounting_is_refused_and_grants_nothing(cli_env: None, system_namespace: str,
                                                                           admin: KubeClient, capsys) -> None:
    user = user_name()
    assert await dpkube("budget", "grant", user, "PENGUIN", "--rho", "0.05", "--delta", "1e-5") == 2
    assert "a rho budget needs zCDP accounting" in capsys.readouterr().err
    with pytest.raises(GrantNotFound):
        await Budgets(admin, system_namespace).find(user, "PENGUIN")


async def test_an_admin_token_is_marked_admin(cli_env: None, capsys) -> None:
    assert await dpkube("token", "create", user_name(), "--admin") == 0
    assert "(admin)" in capsys.readouterr().err


async def test_locking_and_unlocking_a_queue(cli_env: None, admin: KubeClient, system_namespace: str,
                                             capsys) -> None:
    name = f"cliq-{uuid.uuid4().hex[:8]}"
    await admin.create(QUEUE.api_path(system_namespace), {"apiVersion": "dpkube.io/v1alpha1", "kind": "Queue",
                                                          "metadata": {"name": name}, "spec": {}})
    assert await dpkube("queue", "lock", name) == 0
    assert (await admin.get(QUEUE.api_path(system_namespace, name)))["spec"]["locked"] is True
    assert await dpkube("queue", "unlock", name) == 0
    assert (await admin.get(QUEUE.api_path(system_namespace, name)))["spec"]["locked"] is False
    with pytest.raises(SystemExit, match="no queue"):
        await dpkube("queue", "lock", "no-such-queue")


async def test_a_lomas_body_submitted_through_the_facade_is_answered_and_then_listed(
        cli_env: None, facade_url: str, platform: None, tmp_path: Path, capsys, monkeypatch) -> None:
    _, token = await new_user(capsys)
    monkeypatch.setenv("DPKUBE_URL", facade_url)
    monkeypatch.setenv("DPKUBE_TOKEN", token)
    body = tmp_path / "count.json"
    body.write_text(json.dumps(examples.SMARTNOISE_SQL_QUERY))
    assert await dpkube("query", "submit", str(body), "--library", "smartnoise_sql") == 0
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer["query_response"]["columns"] == ["NB_ROW"] and answer["spent_epsilon"] == pytest.approx(0.1)
    assert "submitted to /smartnoise_sql_query" in captured.err
    assert await dpkube("query", "list", "--dataset", "PENGUIN") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split()[2] == "smartnoise_sql"


async def test_a_cost_estimate_through_the_facade(cli_env: None, facade_url: str, tmp_path: Path, capsys) -> None:
    _, token = await new_user(capsys)
    body = tmp_path / "count.json"
    body.write_text(json.dumps(examples.SMARTNOISE_SQL_QUERY))
    argv = ("query", "submit", str(body), "--library", "smartnoise_sql", "--mode", "cost",
            "--url", facade_url, "--token", token)
    assert await dpkube(*argv) == 0
    assert json.loads(capsys.readouterr().out)["epsilon_cost"] == pytest.approx(0.1)


async def test_a_manifest_submitted_with_kube_shows_its_phases_then_its_result(
        cli_env: None, platform: None, admin: KubeClient, namespace: str, tmp_path: Path, capsys) -> None:
    user, _ = await new_user(capsys)
    manifest = tmp_path / "count.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "dpkube.io/v1alpha1", "kind": "DPQuery", "metadata": {"name": "penguin-count"},
        "spec": {"user": user, "dataset": "PENGUIN", "library": "smartnoise-sql",
                 "smartnoiseSql": {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-5,
                                   "mechanisms": {"count": "gaussian"}}}}))
    assert await dpkube("query", "submit", str(manifest), "--kube", "--user", user) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["name"] == "penguin-count" and result["spent_epsilon"] == pytest.approx(0.1)
    assert result["result"]["columns"] == ["NB_ROW"]
    assert "created dpquery penguin-count" in captured.err and "Succeeded" in captured.err
    assert (await admin.get(DPQUERY.api_path(namespace, "penguin-count")))["spec"]["user"] == user

    assert await dpkube("query", "list", "--kube", "--user", user) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[:6] for row in rows] == [["penguin-count", user, "PENGUIN", "smartnoise-sql", "query",
                                                  "Succeeded"]]


async def test_a_refused_kube_query_ends_with_its_reason_and_a_failure_code(
        cli_env: None, operator_process, tmp_path: Path, capsys) -> None:
    user, _ = await new_user(capsys, epsilon=0.05)
    body = tmp_path / "count.json"
    body.write_text(json.dumps(examples.SMARTNOISE_SQL_QUERY))
    assert await dpkube("query", "submit", str(body), "--library", "smartnoise_sql", "--kube", "--user", user) == 1
    assert "Rejected" in capsys.readouterr().err
