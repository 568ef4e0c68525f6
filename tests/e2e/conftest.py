"""End-to-end fixtures: the facade reached over HTTP only, never the Kubernetes API, so the suite runs unchanged
against any deployment.

Target: `DPKUBE_E2E_URL` with `DPKUBE_E2E_TOKEN` (a user granted epsilon 10, delta 0.005 on PENGUIN) and
`DPKUBE_E2E_USER` (that user), plus optionally `DPKUBE_E2E_ADMIN_TOKEN` (an admin's token, for queue
registration and Dioptra jobs). Without `DPKUBE_E2E_URL`, the whole platform is started here on loopback.

A real cluster keeps its budgets between runs: tests read the remaining budget first and assert on differences,
and the whole suite spends at most SUITE_EPSILON / SUITE_DELTA, so it can run many times on one grant.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import httpx
import pytest

from dpkube.controlplane.platform import LocalPlatform
from dpkube.models import examples

DATASET = examples.PENGUIN
GRANT = (10.0, 0.005)
"""The grant the target user holds on PENGUIN (the local platform gives exactly this)."""
SUITE_EPSILON = 0.5
SUITE_DELTA = 1e-4
"""Upper bounds of one run's spend (about 0.42 and 3e-5): checked before the first charged query."""
LOCAL_USER = "e2e"
QUERY_TIMEOUT = 300.0
RATE_LIMIT_RETRIES = 5
"""Seconds an HTTP call may take: a private query waits for its pod (a cold pod on a fresh cluster is slow)."""


@dataclass(frozen=True)
class Target:
    """One deployment of the facade and the credentials the suite uses on it."""

    url: str
    user: str
    token: str
    admin_token: str | None = None


def _started(platform: LocalPlatform) -> LocalPlatform:
    """Start the platform on a worker thread: its asyncio.run() must not reset the test session's event loop."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(platform.start).result()


@pytest.fixture(scope="package")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The deployment named by DPKUBE_E2E_URL, else the whole platform started on loopback for this suite."""
    url = os.environ.get("DPKUBE_E2E_URL")
    if url:
        token, user = os.environ.get("DPKUBE_E2E_TOKEN"), os.environ.get("DPKUBE_E2E_USER")
        if not token or not user:
            pytest.fail("DPKUBE_E2E_URL is set: DPKUBE_E2E_TOKEN and DPKUBE_E2E_USER must be set too")
        yield Target(url.rstrip("/"), user, token, os.environ.get("DPKUBE_E2E_ADMIN_TOKEN") or None)
        return
    platform = LocalPlatform(tmp_path_factory.mktemp("e2e-platform"), users=(LOCAL_USER,),
                             grants={(LOCAL_USER, DATASET): GRANT})
    try:
        _started(platform)
        yield Target(platform.url, LOCAL_USER, platform.tokens[LOCAL_USER], platform.tokens["admin"])
    finally:
        platform.stop()


class HonoursRetryAfter(httpx.HTTPTransport):
    """Waits out a 429 as its Retry-After says, as a well-behaved client does: the suite, one user, can send
    faster than a user's sustained rate (none of its tests is about that limit)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(RATE_LIMIT_RETRIES):
            response = super().handle_request(request)
            if response.status_code != 429:
                return response
            response.read()
            response.close()
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return super().handle_request(request)


def _client(target: Target, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=target.url, headers=headers, timeout=QUERY_TIMEOUT, transport=HonoursRetryAfter())


def _basic(user: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture(scope="package")
def lomas(target: Target) -> Iterator[httpx.Client]:
    """The user, as the Lomas client calls the facade: Bearer token."""
    with _client(target, {"Authorization": f"Bearer {target.token}"}) as client:
        yield client


@pytest.fixture(scope="package")
def dioptra(target: Target) -> Iterator[httpx.Client]:
    """The user, as the stock Dioptra client calls the facade (HTTP Basic, as from ~/.netrc)."""
    with _client(target, _basic(target.user, target.token)) as client:
        yield client


@pytest.fixture(scope="package")
def dioptra_admin(target: Target) -> Iterator[httpx.Client]:
    """An admin on the Dioptra routes (queues); skipped on a deployment given without an admin token."""
    if target.admin_token is None:
        pytest.skip("needs DPKUBE_E2E_ADMIN_TOKEN (an admin's API token)")
    with _client(target, {"Authorization": f"Bearer {target.admin_token}"}) as client:
        yield client


@pytest.fixture(scope="package")
def anonymous(target: Target) -> Iterator[httpx.Client]:
    """A caller without credentials."""
    with _client(target, {}) as client:
        yield client


class Remaining(NamedTuple):
    """A remaining budget; compare with pytest.approx (float sums in another order differ in the last bits)."""

    epsilon: float
    delta: float

    def minus(self, epsilon: float, delta: float) -> Remaining:
        return Remaining(self.epsilon - epsilon, self.delta - delta)


class Budget:
    """The user's remaining budget on PENGUIN, read through the facade."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def remaining(self) -> Remaining:
        response = self.client.post("/get_remaining_budget", json=examples.GET_DB_DATA)
        assert response.status_code == 200, response.text
        body = response.json()
        return Remaining(body["remaining_epsilon"], body["remaining_delta"])

    def settled(self, expected: Remaining, within: float = 15.0) -> Remaining:
        """The remaining budget once it equals `expected` (another replica's cache may lag), or the last read."""
        deadline = time.monotonic() + within
        while True:
            now = self.remaining()
            if now == pytest.approx(expected) or time.monotonic() > deadline:
                return now
            time.sleep(0.2)


@pytest.fixture(scope="package")
def budget(lomas: httpx.Client) -> Budget:
    return Budget(lomas)


@pytest.fixture(scope="package")
def spendable(budget: Budget) -> Remaining:
    """The remaining budget before the first charged query; fails clearly when a run no longer fits in it."""
    before = budget.remaining()
    if before.epsilon < SUITE_EPSILON or before.delta < SUITE_DELTA:
        pytest.fail(f"the e2e user's PENGUIN budget is nearly spent (remaining epsilon {before.epsilon}, delta "
                    f"{before.delta}; a run needs {SUITE_EPSILON}, {SUITE_DELTA}): grant a fresh budget "
                    f"(epsilon {GRANT[0]}, delta {GRANT[1]}) or use another user")
    return before


@dataclass(frozen=True)
class Charged:
    """A private query and what it did to the budget."""

    before: Remaining
    response: httpx.Response
    after: Remaining

    @property
    def reply(self) -> dict:
        return self.response.json()


@pytest.fixture(scope="package")
def charge(lomas: httpx.Client, budget: Budget, spendable: Remaining) -> Callable[[str, dict], Charged]:
    """Send one private query and read the remaining budget before and after it."""

    def send(route: str, body: dict) -> Charged:
        before = budget.remaining()
        response = lomas.post(route, json=body)
        assert response.status_code == 200, response.text
        reply = response.json()
        after = budget.settled(before.minus(reply["spent_epsilon"], reply["spent_delta"]))
        return Charged(before, response, after)

    return send
