"""The web dashboard over HTTP (no browser): the API's identity rules, a session cookie the API routes never
read, admin pages for admins only, and forms that do nothing without their CSRF token and own origin."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from dpkube.api.settings import ApiSettings
from dpkube.budget import ledger as L
from dpkube.k8s.caps import CapKey, cap_manifest
from dpkube.k8s.client import KubeClient, core_path
from dpkube.models import examples
from dpkube.models.cost import Cost
from dpkube.models.kinds import EXPERIMENT, QUEUE
from dpkube_testing.builders import queue

from .conftest import http_client, running_app

ORIGIN = {"Origin": "http://dpkube"}


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, that follows no redirect (the tests look at them)."""
    async with http_client(app) as client:
        yield client


@pytest.fixture
async def other_browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


@pytest.fixture
async def admin_caller(new_caller):
    return await new_caller(admin_user=True)


async def csrf(client: httpx.AsyncClient) -> str:
    """The CSRF token the sign-in page gives this client (and sets as its cookie)."""
    await client.get("/ui/login")
    return client.cookies["dpkube_csrf"]


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/ui/login", data={"csrf": await csrf(client), "token": token}, headers=ORIGIN)


@pytest.fixture
async def locked_queue_name(admin: KubeClient, system_namespace: str) -> AsyncIterator[str]:
    """A fresh open queue, removed afterwards."""
    name = f"ui-{uuid.uuid4().hex[:8]}"
    await admin.create(QUEUE.api_path(system_namespace), queue(name))
    yield name
    await admin.delete(QUEUE.api_path(system_namespace, name))


async def lock_from_page(client: httpx.AsyncClient, queue_name: str, token: str,
                         headers: dict[str, str]) -> httpx.Response:
    """The admin page's lock form, posted with this CSRF token and these headers."""
    return await client.post(f"/ui/admin/queues/{queue_name}/lock", data={"csrf": token}, headers=headers)


async def is_locked(admin: KubeClient, system_namespace: str, name: str) -> bool:
    return bool((await admin.get(QUEUE.api_path(system_namespace, name)))["spec"].get("locked"))


async def test_a_page_without_a_session_redirects_to_the_sign_in_form(browser) -> None:
    response = await browser.get("/ui")
    assert (response.status_code, response.headers["location"]) == (303, "/ui/login")


async def test_a_page_with_a_bad_session_cookie_redirects_to_the_sign_in_form(browser) -> None:
    browser.cookies.set("dpkube_session", "dpk_not-a-token")
    response = await browser.get("/ui")
    assert (response.status_code, response.headers["location"]) == (303, "/ui/login")


async def test_signing_in_keeps_the_token_in_an_httponly_strict_cookie_for_the_pages_only(browser, caller) -> None:
    response = await sign_in(browser, caller.token)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("dpkube_session="))
    assert (response.status_code, response.headers["location"]) == (303, "/ui")
    assert {"HttpOnly", "Path=/ui", "SameSite=strict"} <= {part.strip() for part in cookie.split(";")}


async def test_a_signed_in_user_sees_their_page(browser, caller) -> None:
    await sign_in(browser, caller.token)
    response = await browser.get("/ui")
    assert response.status_code == 200
    assert caller.name in response.text and 'data-dataset="PENGUIN"' in response.text


async def test_a_bad_token_does_not_sign_in(browser) -> None:
    response = await sign_in(browser, "dpk_wrong")
    assert response.status_code == 401
    assert "dpkube_session" not in browser.cookies


async def test_signing_in_without_the_csrf_token_is_403(browser, caller) -> None:
    await csrf(browser)
    response = await browser.post("/ui/login", data={"token": caller.token}, headers=ORIGIN)
    assert response.status_code == 403
    assert "dpkube_session" not in browser.cookies


async def test_the_api_routes_never_take_the_session_cookie(browser, caller) -> None:
    await sign_in(browser, caller.token)
    response = await browser.post("/get_initial_budget", json={"dataset_name": "PENGUIN"})
    assert response.status_code == 401


async def test_pages_forbid_scripts_and_anything_from_elsewhere(browser, caller) -> None:
    await sign_in(browser, caller.token)
    policy = (await browser.get("/ui")).headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


async def test_the_admin_page_is_403_for_a_user(browser, caller) -> None:
    await sign_in(browser, caller.token)
    assert (await browser.get("/ui/admin")).status_code == 403


async def test_an_admin_sees_the_admin_page(browser, admin_caller, locked_queue_name) -> None:
    await sign_in(browser, admin_caller.token)
    response = await browser.get("/ui/admin")
    assert response.status_code == 200 and f'data-queue="{locked_queue_name}"' in response.text


async def test_an_admin_sees_an_experiments_spend_against_its_cap(browser, admin_caller, admin, namespace,
                                                                  system_namespace) -> None:
    await admin.create(EXPERIMENT.api_path(namespace), {
        "apiVersion": "dpkube.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "capped"},
        "spec": {"displayName": "capped_study", "budget": {"epsilon": 1.0, "delta": 0.0001}}})
    books = cap_manifest(system_namespace, CapKey(namespace, "capped", "carol", "PENGUIN"), Cost(1.0, 0.0001))
    books["data"].update(L.to_data(L.charge(L.reserve(L.from_data(books["data"]), "q1", Cost(0.25, 0)), "q1")))
    await admin.create(core_path("configmaps", system_namespace), books)
    await sign_in(browser, admin_caller.token)
    page = (await browser.get("/ui/admin")).text
    assert "capped_study" in page and "cap ε 1" in page
    assert re.search(r'<tr class="cap-spend"><td>carol</td><td>PENGUIN</td>.*?<td>0.25</td><td>0.75</td>', page, re.S)
    await admin.delete(core_path("configmaps", system_namespace, books["metadata"]["name"]))


async def test_an_admin_locks_a_queue_from_the_page(browser, admin_caller, admin, system_namespace,
                                                    locked_queue_name) -> None:
    await sign_in(browser, admin_caller.token)
    response = await lock_from_page(browser, locked_queue_name, browser.cookies["dpkube_csrf"], ORIGIN)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/admin")
    assert await is_locked(admin, system_namespace, locked_queue_name)


async def test_a_lock_without_the_csrf_token_is_403_and_locks_nothing(browser, admin_caller, admin, system_namespace,
                                                                     locked_queue_name) -> None:
    await sign_in(browser, admin_caller.token)
    response = await lock_from_page(browser, locked_queue_name, "forged", ORIGIN)
    assert response.status_code == 403
    assert not await is_locked(admin, system_namespace, locked_queue_name)


async def test_a_lock_from_another_origin_is_403_and_locks_nothing(browser, admin_caller, admin, system_namespace,
                                                                   locked_queue_name) -> None:
    await sign_in(browser, admin_caller.token)
    response = await lock_from_page(browser, locked_queue_name, browser.cookies["dpkube_csrf"],
                                    {"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert not await is_locked(admin, system_namespace, locked_queue_name)


async def test_a_lock_by_a_user_is_403_and_locks_nothing(browser, caller, admin, system_namespace,
                                                         locked_queue_name) -> None:
    await sign_in(browser, caller.token)
    response = await lock_from_page(browser, locked_queue_name, browser.cookies["dpkube_csrf"], ORIGIN)
    assert response.status_code == 403
    assert not await is_locked(admin, system_namespace, locked_queue_name)


async def test_a_user_never_sees_another_users_queries(browser, other_browser, caller, new_caller) -> None:
    bob = await new_caller()
    submitted = await other_browser.post("/smartnoise_sql_query", json=examples.SMARTNOISE_SQL_QUERY,
                                         headers={**bob.headers, "Prefer": "respond-async"})
    name = submitted.json()["name"]
    await sign_in(browser, caller.token)
    await sign_in(other_browser, bob.token)
    assert name in (await other_browser.get("/ui")).text
    assert name not in (await browser.get("/ui")).text
    assert (await browser.get(f"/ui/queries/{name}")).status_code == 404


async def test_signing_out_ends_the_session(browser, caller) -> None:
    await sign_in(browser, caller.token)
    await browser.post("/ui/logout", data={"csrf": browser.cookies["dpkube_csrf"]}, headers=ORIGIN)
    assert (await browser.get("/ui")).status_code == 303


async def test_with_the_trusted_header_mode_on_the_header_is_the_identity(settings, admin, engine_pool,
                                                                          caller) -> None:
    trusting = ApiSettings(**{**settings.model_dump(), "trusted_header": True})
    async for app in running_app(trusting, admin, engine_pool):
        async with http_client(app) as client:
            response = await client.get("/ui", headers={"user-name": caller.name})
    assert response.status_code == 200 and caller.name in response.text


async def test_with_the_trusted_header_mode_off_the_header_is_not_an_identity(browser, caller) -> None:
    assert (await browser.get("/ui", headers={"user-name": caller.name})).status_code == 303
