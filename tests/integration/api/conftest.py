"""The facade on the session's real API server: an app per test, callers with their own grants and tokens."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from dpkube.api.main import create_app
from dpkube.api.settings import ApiSettings
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient
from dpkube.k8s.tokens import create_token

PENGUIN_BUDGET = (10.0, 0.005)


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


@pytest.fixture
def settings(namespace: str, system_namespace: str) -> ApiSettings:
    """The facade's settings: this test's own query namespace, short waits."""
    return ApiSettings(query_namespace=namespace, system_namespace=system_namespace, query_wait_seconds=120)


async def running_app(settings: ApiSettings, admin: KubeClient) -> AsyncIterator[FastAPI]:
    app = create_app(settings, admin)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(settings: ApiSettings, admin: KubeClient) -> AsyncIterator[FastAPI]:
    async for running in running_app(settings, admin):
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
