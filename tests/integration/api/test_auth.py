"""Who is calling: API tokens (Bearer or Basic), cluster tokens (TokenReview), or the trusted header."""

from __future__ import annotations

import asyncio
import base64

import pytest

from dpkube.api.settings import ApiSettings
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.tokens import hash_token
from dpkube.models import examples

from .conftest import CountingClient, http_client, running_app

BUDGET = "/get_initial_budget"


async def test_no_credentials_is_401_with_a_challenge_and_a_lomas_body(http) -> None:
    response = await http.post(BUDGET, json=examples.GET_DB_DATA)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]
    assert list(response.json()) == ["UnauthorizedAccessException"]


async def test_the_user_name_header_alone_is_not_an_identity_by_default(http, caller) -> None:
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers={"user-name": caller.name})
    assert response.status_code == 401


async def test_an_unknown_token_is_401(http) -> None:
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers={"Authorization": "Bearer dpk_nope"})
    assert response.status_code == 401


async def test_a_bearer_api_token_identifies_its_user(http, caller) -> None:
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers=caller.headers)
    assert response.status_code == 200


async def test_basic_auth_with_user_name_and_token_identifies_the_user(http, caller) -> None:
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers=caller.basic)
    assert response.status_code == 200


async def test_basic_auth_with_another_users_name_is_401(http, caller, new_caller) -> None:
    other = await new_caller()
    credentials = base64.b64encode(f"{other.name}:{caller.token}".encode()).decode()
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers={"Authorization": f"Basic {credentials}"})
    assert response.status_code == 401


async def test_asking_for_another_users_budget_by_header_is_403(http, caller, new_caller) -> None:
    other = await new_caller()
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers={**caller.headers, "user-name": other.name})
    assert response.status_code == 403
    assert list(response.json()) == ["UnauthorizedAccessException"]


async def test_the_matching_user_name_header_is_accepted_with_a_token(http, caller) -> None:
    response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers={**caller.headers, "user-name": caller.name})
    assert response.status_code == 200


async def test_a_service_account_token_is_a_cluster_identity(http, admin: KubeClient, namespace: str,
                                                             budgets: Budgets) -> None:
    await admin.create(core_path("serviceaccounts", namespace), {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "notebook"}})
    issued = await admin.create(core_path("serviceaccounts", namespace, "notebook") + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    identity = f"system:serviceaccount:{namespace}:notebook"
    await budgets.grant(identity, "PENGUIN", 3.0, 0.001)
    response = await http.post(BUDGET, json=examples.GET_DB_DATA,
                               headers={"Authorization": f"Bearer {issued['status']['token']}"})
    assert (response.status_code, response.json()) == (200, {"initial_epsilon": 3.0, "initial_delta": 0.001})


async def test_in_trusted_header_mode_the_user_name_header_is_the_identity(settings: ApiSettings, admin, caller,
                                                                          engine_pool) -> None:
    async for app in running_app(settings.model_copy(update={"trusted_header": True}), admin, engine_pool):
        async with http_client(app) as http:
            response = await http.post(BUDGET, json=examples.GET_DB_DATA, headers={"user-name": caller.name})
    assert (response.status_code, response.json()) == (200, {"initial_epsilon": 10.0, "initial_delta": 0.005})


async def test_in_trusted_header_mode_a_request_without_the_header_still_needs_credentials(settings, admin,
                                                                                           engine_pool) -> None:
    async for app in running_app(settings.model_copy(update={"trusted_header": True}), admin, engine_pool):
        async with http_client(app) as http:
            response = await http.post(BUDGET, json=examples.GET_DB_DATA)
    assert response.status_code == 401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_repeated_bad_api_token_is_refused_from_memory(counted_http, counting: CountingClient) -> None:
    for _ in range(20):
        response = await counted_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer("dpk_wrong"))
        assert response.status_code == 401
    assert counting.count("GET", "/secrets/") == 1


async def test_a_flood_of_distinct_bad_api_tokens_shares_a_few_secret_reads(counted_http,
                                                                            counting: CountingClient) -> None:
    responses = await asyncio.gather(*(
        counted_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer(f"dpk_wrong{i}")) for i in range(100)))
    assert {r.status_code for r in responses} == {401}
    assert counting.count("GET", "/secrets/") <= 10


async def test_api_tokens_are_never_sent_to_token_review(counted_http, counting: CountingClient) -> None:
    await counted_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer("dpk_wrong"))
    assert counting.count("POST", "tokenreviews") == 0


async def test_a_repeated_bad_cluster_token_is_reviewed_once(counted_http, counting: CountingClient) -> None:
    for _ in range(10):
        response = await counted_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer("not-a-token"))
        assert response.status_code == 401
    assert counting.count("POST", "tokenreviews") == 1
    assert counting.count("GET", "/secrets/") == 0


async def test_token_reviews_ask_for_the_configured_audiences(counted_http, counting: CountingClient,
                                                              settings: ApiSettings) -> None:
    await counted_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer("not-a-token"))
    (review,) = [call.body for call in counting.calls if "tokenreviews" in call.path]
    assert review["spec"]["audiences"] == settings.token_review_audiences


OWN_AUDIENCE = "https://dpkube.example.org"


async def service_account_token(admin: KubeClient, namespace: str, budgets: Budgets,
                                audiences: list[str] | None = None) -> str:
    """A token of a fresh service account with a PENGUIN grant, for the given audiences (else the API server's)."""
    name = f"sa-{len(audiences or [])}"
    await admin.create(core_path("serviceaccounts", namespace), {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    spec: dict = {"expirationSeconds": 600} | ({"audiences": audiences} if audiences else {})
    issued = await admin.create(core_path("serviceaccounts", namespace, name) + "/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    await budgets.grant(f"system:serviceaccount:{namespace}:{name}", "PENGUIN", 3.0, 0.001)
    return issued["status"]["token"]


@pytest.fixture
async def own_audience_http(settings: ApiSettings, admin, engine_pool):
    async for app in running_app(settings.model_copy(update={"token_review_audiences": [OWN_AUDIENCE]}), admin,
                                 engine_pool):
        async with http_client(app) as http:
            yield http


async def test_a_cluster_token_for_the_configured_audience_is_accepted(own_audience_http, admin: KubeClient,
                                                                       namespace: str, budgets: Budgets) -> None:
    token = await service_account_token(admin, namespace, budgets, [OWN_AUDIENCE])
    response = await own_audience_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer(token))
    assert response.status_code == 200


async def test_a_cluster_token_for_another_audience_is_401(own_audience_http, admin: KubeClient, namespace: str,
                                                           budgets: Budgets) -> None:
    token = await service_account_token(admin, namespace, budgets)
    response = await own_audience_http.post(BUDGET, json=examples.GET_DB_DATA, headers=bearer(token))
    assert response.status_code == 401


async def test_a_revoked_token_is_refused_once_the_cache_time_has_passed(settings: ApiSettings, admin, caller,
                                                                         system_namespace, engine_pool) -> None:
    async for app in running_app(settings.model_copy(update={"auth_cache_seconds": 0.3}), admin, engine_pool):
        async with http_client(app) as http:
            before = await http.post(BUDGET, json=examples.GET_DB_DATA, headers=caller.headers)
            await admin.patch(core_path("secrets", system_namespace, settings.token_secret),
                              {"data": {hash_token(caller.token): None}})
            await asyncio.sleep(0.4)
            after = await http.post(BUDGET, json=examples.GET_DB_DATA, headers=caller.headers)
    assert (before.status_code, after.status_code) == (200, 401)
