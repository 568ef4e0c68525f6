"""An experiment's budget cap over Dioptra: admins set it, every caller reads the spend against it (their own)."""

from __future__ import annotations

from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import CapKey, ExperimentCaps
from dpkube.k8s.client import KubeClient
from dpkube.models.cost import Cost
from dpkube.models.kinds import DPQUERY, EXPERIMENT, QUEUE
from dpkube_testing.builders import dpquery, queue

API = "/api/v0"


async def register(http, caller, name: str) -> dict:
    return (await http.post(f"{API}/experiment/", json={"name": name}, headers=caller.basic)).json()


async def test_an_admin_sets_the_cap_and_the_experiment_keeps_its_four_keys(http, caller, new_caller) -> None:
    root = await new_caller(admin_user=True)
    registered = await register(http, caller, "capped")
    url = f"{API}/experiment/{registered['experimentId']}/budget"
    response = await http.put(url, json={"epsilon": 1.5, "delta": 1e-4}, headers=root.basic)
    assert response.status_code == 200
    assert response.json() == {"experimentId": registered["experimentId"], "name": "capped",
                               "cap": {"epsilon": 1.5, "delta": 1e-4}, "budgets": []}
    by_name = await http.get(f"{API}/experiment/name/capped/budget", headers=caller.basic)
    assert by_name.json()["cap"] == {"epsilon": 1.5, "delta": 1e-4}
    assert set((await http.get(f"{API}/experiment/{registered['experimentId']}", headers=caller.basic)).json()) == {
        "experimentId", "name", "createdOn", "lastModified"}


async def test_an_admin_removes_the_cap(http, caller, new_caller) -> None:
    root = await new_caller(admin_user=True)
    registered = await register(http, caller, "uncapped")
    url = f"{API}/experiment/{registered['experimentId']}/budget"
    await http.put(url, json={"epsilon": 1.0}, headers=root.basic)
    response = await http.delete(url, headers=root.basic)
    assert response.status_code == 200 and response.json()["cap"] is None


async def test_a_user_may_not_set_the_cap(http, caller, admin, namespace) -> None:
    registered = await register(http, caller, "mine")
    response = await http.put(f"{API}/experiment/{registered['experimentId']}/budget", json={"epsilon": 99.0},
                              headers=caller.basic)
    assert response.status_code == 403
    [obj] = (await admin.list(EXPERIMENT.api_path(namespace)))["items"]
    assert "budget" not in obj["spec"]


async def test_a_negative_cap_is_400_and_changes_nothing(http, caller, new_caller, admin, namespace) -> None:
    root = await new_caller(admin_user=True)
    registered = await register(http, caller, "bad")
    response = await http.put(f"{API}/experiment/{registered['experimentId']}/budget", json={"epsilon": -1.0},
                              headers=root.basic)
    assert response.status_code == 400
    [obj] = (await admin.list(EXPERIMENT.api_path(namespace)))["items"]
    assert "budget" not in obj["spec"]


async def test_the_cap_of_an_unknown_experiment_is_404(http, caller) -> None:
    response = await http.get(f"{API}/experiment/987654/budget", headers=caller.basic)
    assert response.status_code == 404


async def held_queries(admin: KubeClient, namespace: str, system_namespace: str, users: list[str]) -> list[str]:
    """The uids of one query per user, each held in a locked queue. An operator that runs beside these tests
    (other modules start one) audits the ledgers every second and settles the reservations of queries that do
    not exist: reservations of made-up uids would vanish under the test."""
    gate = f"hold-{namespace}"
    await admin.create(QUEUE.api_path(system_namespace), queue(gate, locked=True))
    uids = []
    for index, user in enumerate(users):
        created = await admin.create(DPQUERY.api_path(namespace), dpquery(f"held-{index}", user=user, queue=gate))
        uids.append(created["metadata"]["uid"])
    return uids


async def test_a_user_sees_only_their_own_spend_and_an_admin_sees_all(
    http, caller, new_caller, admin, namespace, system_namespace, budgets: Budgets
) -> None:
    other, root = await new_caller(), await new_caller(admin_user=True)
    registered = await register(http, caller, "shared")
    url = f"{API}/experiment/{registered['experimentId']}/budget"
    await http.put(url, json={"epsilon": 1.0, "delta": 1e-3}, headers=root.basic)
    [obj] = (await admin.list(EXPERIMENT.api_path(namespace)))["items"]
    caps = ExperimentCaps(budgets)
    users = [caller.name, other.name]
    for user, uid in zip(users, await held_queries(admin, namespace, system_namespace, users), strict=True):
        grant = await budgets.find(user, "PENGUIN")
        await caps.reserve(CapKey(namespace, obj["metadata"]["name"], user, "PENGUIN"), obj, uid, Cost(0.25, 1e-5),
                           lambda grant=grant, uid=uid: budgets.move(grant, lambda ledger: L.reserve(
                               ledger, uid, Cost(0.25, 1e-5))))
    mine = (await http.get(url, headers=caller.basic)).json()["budgets"]
    assert [(row["user"], row["reserved"]["epsilon"], row["remaining"]["epsilon"]) for row in mine] == [
        (caller.name, 0.25, 0.75)]
    every = (await http.get(url, headers=root.basic)).json()["budgets"]
    assert {row["user"] for row in every} == {caller.name, other.name}
