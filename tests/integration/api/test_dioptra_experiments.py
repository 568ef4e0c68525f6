"""Dioptra v0 experiments are Experiment objects: slugified names, integer ids kept in the cluster."""

from __future__ import annotations

import asyncio
import datetime as dt

from dpkube.api.services.dioptra.ids import COUNTERS
from dpkube.k8s.client import NotFound, core_path
from dpkube.models.kinds import EXPERIMENT
from dpkube_testing.builders import experiment

from .conftest import http_client, running_app

API = "/api/v0"
EXPERIMENT_KEYS = {"experimentId", "name", "createdOn", "lastModified"}
NOT_FOUND = {"message": "Not Found - The requested experiment does not exist"}


async def test_registering_slugifies_the_name_and_answers_the_experiment(http, caller) -> None:
    response = await http.post(f"{API}/experiment/", json={"name": " My Exp_1 "}, headers=caller.basic)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == EXPERIMENT_KEYS
    assert body["name"] == "my-exp_1" and body["experimentId"] > 0
    assert body["createdOn"] == body["lastModified"]
    assert dt.datetime.fromisoformat(body["createdOn"]).tzinfo is None


async def test_an_experiment_is_an_experiment_object_named_validly(http, caller, admin, namespace) -> None:
    body = (await http.post(f"{API}/experiment/", json={"name": "Mnist_Squeeze"}, headers=caller.basic)).json()
    [obj] = (await admin.list(EXPERIMENT.api_path(namespace)))["items"]
    assert obj["spec"]["displayName"] == "mnist_squeeze"
    assert obj["metadata"]["name"].startswith("exp-")
    assert obj["metadata"]["labels"]["dpkube.io/dioptra-id"] == str(body["experimentId"])


async def test_a_duplicate_slug_is_400_with_dioptras_message(http, caller) -> None:
    await http.post(f"{API}/experiment/", json={"name": "My Exp"}, headers=caller.basic)
    response = await http.post(f"{API}/experiment/", json={"name": "my exp"}, headers=caller.basic)
    assert response.status_code == 400
    assert response.json() == {"message": "Bad Request - The experiment name on the registration form already "
                                          "exists. Please select another and resubmit."}


async def test_unknown_registration_keys_are_400_schema_errors(http, caller) -> None:
    response = await http.post(f"{API}/experiment/", json={"name": "x", "color": "red"}, headers=caller.basic)
    assert response.status_code == 400
    assert "color" in response.json()["schema_errors"]


async def test_lookups_by_id_and_by_slugified_name_equal_the_registration(http, caller) -> None:
    registered = (await http.post(f"{API}/experiment/", json={"name": "My Exp"}, headers=caller.basic)).json()
    by_id = await http.get(f"{API}/experiment/{registered['experimentId']}", headers=caller.basic)
    by_name = await http.get(f"{API}/experiment/name/MY EXP", headers=caller.basic)
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == registered


async def test_unknown_experiments_are_404_with_dioptras_message(http, caller) -> None:
    for path in ("experiment/999999999", "experiment/name/nothing-here"):
        response = await http.get(f"{API}/{path}", headers=caller.basic)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


async def test_a_non_integer_id_is_a_json_404(http, caller) -> None:
    response = await http.get(f"{API}/experiment/abc", headers=caller.basic)
    assert response.status_code == 404 and "Not Found" in response.json()["message"]


async def test_the_list_holds_every_experiment_by_id_with_or_without_slash(http, caller) -> None:
    assert (await http.get(f"{API}/experiment/", headers=caller.basic)).json() == []
    first = (await http.post(f"{API}/experiment", json={"name": "a"}, headers=caller.basic)).json()
    second = (await http.post(f"{API}/experiment/", json={"name": "b"}, headers=caller.basic)).json()
    assert (await http.get(f"{API}/experiment", headers=caller.basic)).json() == [first, second]


async def test_ids_increase_across_two_app_instances_sharing_the_cluster(settings, admin, caller, engine_pool) -> None:
    async for app_a in running_app(settings, admin, engine_pool):
        async for app_b in running_app(settings, admin, engine_pool):
            async with http_client(app_a) as a, http_client(app_b) as b:
                one = (await a.post(f"{API}/experiment/", json={"name": "one"}, headers=caller.basic)).json()
                two = (await b.post(f"{API}/experiment/", json={"name": "two"}, headers=caller.basic)).json()
                assert (await b.get(f"{API}/experiment/name/one", headers=caller.basic)).json() == one
    assert two["experimentId"] > one["experimentId"]


async def test_ids_survive_a_restart_of_the_facade(settings, admin, caller, engine_pool) -> None:
    async for app in running_app(settings, admin, engine_pool):
        async with http_client(app) as http:
            before = (await http.post(f"{API}/experiment/", json={"name": "kept"}, headers=caller.basic)).json()
    async for app in running_app(settings, admin, engine_pool):
        async with http_client(app) as http:
            after = (await http.get(f"{API}/experiment/name/kept", headers=caller.basic)).json()
            newer = (await http.post(f"{API}/experiment/", json={"name": "new"}, headers=caller.basic)).json()
    assert after == before and newer["experimentId"] > before["experimentId"]


async def gone_from(admin, path: str) -> None:
    for _ in range(200):
        try:
            await admin.get(path)
        except NotFound:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} was never deleted")


async def test_a_deleted_experiments_id_is_never_reused(http, caller, admin, namespace) -> None:
    gone = (await http.post(f"{API}/experiment/", json={"name": "gone"}, headers=caller.basic)).json()
    [obj] = (await admin.list(EXPERIMENT.api_path(namespace)))["items"]
    await admin.delete(EXPERIMENT.api_path(namespace, obj["metadata"]["name"]))
    await gone_from(admin, EXPERIMENT.api_path(namespace, obj["metadata"]["name"]))  # the operator's cascade
    again = (await http.post(f"{API}/experiment/", json={"name": "gone"}, headers=caller.basic)).json()
    assert again["experimentId"] > gone["experimentId"]


async def test_concurrent_registrations_get_distinct_ids(http, caller) -> None:
    replies = await asyncio.gather(*(http.post(f"{API}/experiment/", json={"name": f"par-{i}"}, headers=caller.basic)
                                     for i in range(12)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["experimentId"] for r in replies}) == 12


async def test_ids_come_from_a_counter_configmap_in_the_system_namespace(http, caller, admin,
                                                                          system_namespace) -> None:
    body = (await http.post(f"{API}/experiment/", json={"name": "counted"}, headers=caller.basic)).json()
    counters = await admin.get(core_path("configmaps", system_namespace, COUNTERS))
    assert int(counters["data"]["experiment"]) >= body["experimentId"]


async def test_dioptra_routes_need_credentials_and_answer_401_as_a_message(http) -> None:
    response = await http.get(f"{API}/experiment/")
    assert response.status_code == 401 and response.json()["message"].startswith("Unauthorized - ")


async def test_two_racing_registrations_of_one_name_give_one_200_and_one_400(http, caller) -> None:
    replies = await asyncio.gather(*(http.post(f"{API}/experiment/", json={"name": "same"}, headers=caller.basic)
                                     for _ in range(2)))
    assert sorted(r.status_code for r in replies) == [200, 400]


async def test_an_experiment_made_with_kubectl_is_found_by_its_display_name_with_an_id(
        http, caller, admin, namespace) -> None:
    await admin.create(EXPERIMENT.api_path(namespace), experiment("census", displayName="census_2020"))
    found = await http.get(f"{API}/experiment/name/census_2020", headers=caller.basic)
    assert found.status_code == 200, found.text
    assert found.json()["name"] == "census_2020" and found.json()["experimentId"] > 0
    again = await http.get(f"{API}/experiment/{found.json()['experimentId']}", headers=caller.basic)
    assert again.json() == found.json()


async def test_an_experiment_made_with_kubectl_is_listed_once_with_one_id(http, caller, admin, namespace) -> None:
    await admin.create(EXPERIMENT.api_path(namespace), experiment("survey"))
    first, second = [(await http.get(f"{API}/experiment/", headers=caller.basic)).json() for _ in range(2)]
    assert first == second
    assert [e["name"] for e in first] == ["survey"] and first[0]["experimentId"] > 0
