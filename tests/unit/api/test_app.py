"""The app without an API server: health, the body limit and the 500 body."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from dpkube.api.errors import INTERNAL_MESSAGE
from dpkube.api.logs import JsonFormatter
from dpkube.api.main import create_app
from dpkube.api.settings import ApiSettings
from dpkube.k8s.client import KubeClient, KubeConfig

NOWHERE = KubeConfig("https://127.0.0.1:9")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with KubeClient(NOWHERE, timeout=0.5) as kube:
        app = create_app(ApiSettings(cache=False, max_body_bytes=100), kube)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://dpkube") as client:
            yield client


async def test_healthz_needs_no_api_server(http) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_a_declared_body_over_the_limit_is_413(http) -> None:
    response = await http.post("/get_initial_budget", content=b"x" * 101, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


async def test_a_streamed_body_over_the_limit_is_413(http) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 50

    response = await http.post("/get_initial_budget", content=chunks(), headers={"Content-Type": "application/json",
                                                                                   "Authorization": "Bearer t"})
    assert response.status_code == 413


async def test_an_unreachable_api_server_is_the_constant_500(http) -> None:
    response = await http.post("/get_initial_budget", json={"dataset_name": "PENGUIN"},
                               headers={"Authorization": "Bearer t"})
    assert (response.status_code, response.json()) == (500, {"InternalServerException": INTERNAL_MESSAGE})


def test_logs_are_one_json_object_with_the_extra_fields() -> None:
    record = logging.LogRecord("dpkube.api", logging.INFO, __file__, 1, "served", (), None)
    record.route = "/get_initial_budget"
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["message"], entry["route"], entry["level"]) == ("served", "/get_initial_budget", "info")


async def test_readyz_waits_for_the_worker_pool_to_start(http) -> None:
    response = await http.get("/readyz")
    assert (response.status_code, response.json()) == (503, {"status": "not ready", "starting": "workers"})
