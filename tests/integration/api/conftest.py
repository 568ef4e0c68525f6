"""The facade on the session's real API server: an app per test, callers with their own grants and tokens."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dpkube.api.main import create_app, worker_pool
from dpkube.api.settings import ApiSettings
from dpkube.engine.pool import WorkerPool
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.k8s.tokens import create_token

PENGUIN_BUDGET = (10.0, 0.005)
SHARED_POOL_TIMEOUT = 30.0
"""The session's pool allows slow jobs: tests share two cores with the control plane and the platform."""
TEST_REQUEST_RATE = 1000.0
"""Tests send requests back to back; the per-user rate is tested with its own settings."""


@dataclass(frozen=True)
class Caller:
    """A user of the facade: a fresh name (grants are session-wide), and an API token."""

    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def basic(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.name}:{self.token}".encode()).decode()}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any


class CountingClient(KubeClient):
    """A real client that records each request it sends, and each watch it opens (method WATCH): what the facade
    costs the API server."""

    def __init__(self, config: KubeConfig) -> None:
        super().__init__(config)
        self.calls: list[Call] = []

    async def request(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        self.calls.append(Call(method, path, options.get("body")))
        return await super().request(method, path, **options)

    def watch(self, path: str, **options: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(Call("WATCH", path, options.get("field_selector")))
        return super().watch(path, **options)

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for call in self.calls if call.method == method and path_part in call.path)


@pytest.fixture
async def counting(kube_config: KubeConfig) -> AsyncIterator[CountingClient]:
    """The admin's access, counted (for an app whose calls a test counts)."""
    async with CountingClient(kube_config) as client:
        yield client


@pytest.fixture
async def counted_http(settings: ApiSettings, counting: CountingClient, engine_pool: WorkerPool
                       ) -> AsyncIterator[httpx.AsyncClient]:
    """A facade whose API-server calls `counting` records."""
    async for app in running_app(settings, counting, engine_pool):
        async with http_client(app) as http:
            yield http


@pytest.fixture
def settings(namespace: str, system_namespace: str) -> ApiSettings:
    """The facade's settings: this test's own query namespace, short waits, no request-rate limit to speak of."""
    return ApiSettings(query_namespace=namespace, system_namespace=system_namespace, query_wait_seconds=120,
                       requests_per_second=TEST_REQUEST_RATE, request_burst=int(TEST_REQUEST_RATE))


@pytest.fixture(scope="session")
async def engine_pool() -> AsyncIterator[WorkerPool]:
    """One worker pool for the session's apps, as a deployed facade has it (the libraries preloaded, before any
    test runs: importing them would slow the tests that measure latency)."""
    pool = worker_pool(ApiSettings(pool_timeout_seconds=SHARED_POOL_TIMEOUT))
    await pool.start()
    await pool.wait_warm()
    yield pool
    await pool.close()


async def running_app(settings: ApiSettings, admin: KubeClient, pool: WorkerPool) -> AsyncIterator[FastAPI]:
    app = create_app(settings, admin, pool)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(settings: ApiSettings, admin: KubeClient, engine_pool: WorkerPool) -> AsyncIterator[FastAPI]:
    async for running in running_app(settings, admin, engine_pool):
        yield running


def http_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dpkube", timeout=180)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


@pytest.fixture
def new_caller(admin: KubeClient, system_namespace: str, budgets: Budgets) -> Callable[..., Awaitable[Caller]]:
    """Make a user with a token and grants (PENGUIN 10/0.005 unless told otherwise)."""

    async def make(grants: dict[str, tuple[float, float]] | None = None, *, admin_user: bool = False) -> Caller:
        name = f"user-{uuid.uuid4().hex[:8]}"
        for dataset, (epsilon, delta) in (grants if grants is not None else {"PENGUIN": PENGUIN_BUDGET}).items():
            await budgets.grant(name, dataset, epsilon, delta)
        return Caller(name, await create_token(admin, system_namespace, name, admin=admin_user))

    return make


@pytest.fixture
async def caller(new_caller: Callable[..., Awaitable[Caller]]) -> Caller:
    """A user with a budget of 10 / 0.005 on PENGUIN and nothing else."""
    return await new_caller()
