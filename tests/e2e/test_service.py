"""The facade as a service: probes answer without credentials, Lomas' state route says LIVE, and every other
route wants valid credentials."""

from __future__ import annotations

import pytest

from dpkube.models import examples

pytestmark = pytest.mark.e2e


def test_liveness_probe_answers_ok(anonymous) -> None:
    response = anonymous.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readiness_probe_says_ready(anonymous) -> None:
    """Ready means the facade's caches synced with the API server, so budgets and datasets read true."""
    response = anonymous.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_state_is_live_without_credentials(anonymous) -> None:
    """Lomas clients poll `/state` before logging in."""
    response = anonymous.get("/state")
    assert response.status_code == 200
    assert response.json()["state"]["LIVE"] is True


def test_root_redirects_to_state(anonymous) -> None:
    response = anonymous.get("/")
    assert response.status_code == 307
    assert response.headers["location"].endswith("/state")


def test_a_lomas_route_without_credentials_is_401_with_a_challenge(anonymous) -> None:
    response = anonymous.post("/get_remaining_budget", json=examples.GET_DB_DATA)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_a_wrong_token_is_401(target, anonymous) -> None:
    response = anonymous.post("/get_remaining_budget", json=examples.GET_DB_DATA,
                              headers={"Authorization": f"Bearer {target.token}x"})
    assert response.status_code == 401


def test_the_token_identifies_its_user(target, lomas) -> None:
    """Every budget the suite reads is this user's: the grant it was given on PENGUIN."""
    response = lomas.post("/get_initial_budget", json=examples.GET_DB_DATA)
    assert (response.status_code, response.json()) == (200, {"initial_epsilon": 10.0, "initial_delta": 0.005})
