"""Dioptra v0 queues are Queue objects in the system namespace: admins register and lock them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from dpkube.api.services.dioptra.records import object_name
from dpkube.models.kinds import QUEUE
from dpkube_testing.builders import queue

API = "/api/v0"
QUEUE_KEYS = {"queueId", "name", "createdOn", "lastModified"}
NOT_FOUND = {"message": "Not Found - The requested queue does not exist"}


def queue_name() -> str:
    """Queues are cluster-wide (system namespace): each test takes fresh names, underscores as Dioptra's."""
    return f"tensorflow_cpu_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def admin_caller(new_caller):
    return await new_caller(admin_user=True)


async def register(http, admin_caller, name: str) -> dict:
    response = await http.post(f"{API}/queue/", json={"name": name}, headers=admin_caller.basic)
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_admin_registers_a_queue_with_its_exact_name_and_its_own_id_sequence(
        http, admin_caller, admin, system_namespace) -> None:
    name = queue_name()
    body = await register(http, admin_caller, name)
    assert set(body) == QUEUE_KEYS and body["name"] == name and body["queueId"] > 0
    obj = await admin.get(QUEUE.api_path(system_namespace, object_name("q-", name)))
    assert obj["spec"]["displayName"] == name


async def test_registering_a_queue_is_admin_only(http, caller) -> None:
    response = await http.post(f"{API}/queue/", json={"name": queue_name()}, headers=caller.basic)
    assert response.status_code == 403 and response.json()["message"].startswith("Forbidden - ")


async def test_a_duplicate_queue_is_400_with_dioptras_message(http, admin_caller) -> None:
    name = queue_name()
    await register(http, admin_caller, name)
    response = await http.post(f"{API}/queue/", json={"name": name}, headers=admin_caller.basic)
    assert response.status_code == 400
    assert response.json() == {"message": "Bad Request - The queue name on the registration form already exists. "
                                          "Please select another and resubmit."}


async def test_lookups_by_id_and_exact_name_equal_the_registration(http, admin_caller, caller) -> None:
    name = queue_name()
    body = await register(http, admin_caller, name)
    assert (await http.get(f"{API}/queue/{body['queueId']}", headers=caller.basic)).json() == body
    assert (await http.get(f"{API}/queue/name/{name}", headers=caller.basic)).json() == body


async def test_queue_names_are_looked_up_exactly(http, admin_caller, caller) -> None:
    name = queue_name()
    await register(http, admin_caller, name)
    response = await http.get(f"{API}/queue/name/{name.upper()}", headers=caller.basic)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


async def test_lock_hides_the_queue_from_the_list_but_not_from_lookups(http, admin_caller, caller) -> None:
    name = queue_name()
    body = await register(http, admin_caller, name)
    response = await http.put(f"{API}/queue/name/{name}/lock", headers=admin_caller.basic)
    assert (response.status_code, response.json()) == (200, {"status": "Success", "name": [name]})
    assert body not in (await http.get(f"{API}/queue/", headers=caller.basic)).json()
    assert (await http.get(f"{API}/queue/name/{name}", headers=caller.basic)).json() == body


async def test_unlock_lists_the_queue_again(http, admin_caller, caller) -> None:
    name = queue_name()
    body = await register(http, admin_caller, name)
    await http.put(f"{API}/queue/name/{name}/lock", headers=admin_caller.basic)
    response = await http.delete(f"{API}/queue/name/{name}/lock", headers=admin_caller.basic)
    assert (response.status_code, response.json()) == (200, {"status": "Success", "name": [name]})
    assert body in (await http.get(f"{API}/queue", headers=caller.basic)).json()


async def test_lock_is_spec_locked_and_keeps_last_modified(http, admin_caller, admin, system_namespace) -> None:
    name = queue_name()
    body = await register(http, admin_caller, name)
    await http.put(f"{API}/queue/name/{name}/lock", headers=admin_caller.basic)
    [obj] = (await admin.list(QUEUE.api_path(system_namespace),
                              label_selector=f"dpkube.io/dioptra-id={body['queueId']}"))["items"]
    assert obj["spec"]["locked"] is True
    assert (await admin.get(QUEUE.api_path(system_namespace, obj["metadata"]["name"])))["metadata"][
        "annotations"]["dpkube.io/dioptra-last-modified"] == body["lastModified"]


async def test_locking_or_unlocking_twice_is_200_each_time(http, admin_caller) -> None:
    name = queue_name()
    await register(http, admin_caller, name)
    for method in (http.put, http.put, http.delete, http.delete):
        assert (await method(f"{API}/queue/name/{name}/lock", headers=admin_caller.basic)).status_code == 200


async def test_locking_an_unknown_queue_is_the_queue_404(http, admin_caller) -> None:
    for method in (http.put, http.delete):
        response = await method(f"{API}/queue/name/{queue_name()}/lock", headers=admin_caller.basic)
        assert (response.status_code, response.json()) == (
            404, NOT_FOUND)


async def test_locking_is_admin_only(http, admin_caller, caller) -> None:
    name = queue_name()
    await register(http, admin_caller, name)
    for method in (http.put, http.delete):
        response = await method(f"{API}/queue/name/{name}/lock", headers=caller.basic)
        assert response.status_code == 403 and "Forbidden" in response.json()["message"]


async def test_parallel_registrations_get_distinct_ids(http, admin_caller) -> None:
    replies = await asyncio.gather(*(http.post(f"{API}/queue/", json={"name": queue_name()},
                                               headers=admin_caller.basic) for _ in range(20)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["queueId"] for r in replies}) == 20


async def test_a_queue_made_with_kubectl_is_listed_with_an_id_of_its_own(http, caller, admin,
                                                                       system_namespace) -> None:
    name = f"kubectl-{uuid.uuid4().hex[:8]}"
    await admin.create(QUEUE.api_path(system_namespace), queue(name))
    listed = {q["name"]: q for q in (await http.get(f"{API}/queue/", headers=caller.basic)).json()}
    assert listed[name]["queueId"] > 0
    again = {q["name"]: q for q in (await http.get(f"{API}/queue/", headers=caller.basic)).json()}
    assert again[name] == listed[name]


async def test_a_queue_made_with_kubectl_is_found_by_its_name(http, caller, admin, system_namespace) -> None:
    name = f"kubectl-{uuid.uuid4().hex[:8]}"
    await admin.create(QUEUE.api_path(system_namespace), queue(name, displayName=name))
    found = await http.get(f"{API}/queue/name/{name}", headers=caller.basic)
    assert found.status_code == 200, found.text
    assert found.json()["name"] == name and found.json()["queueId"] > 0
