"""Property-based check of the facade against its own OpenAPI document: no generated request gets a 5xx.

Schemathesis generates bodies from each route's schema (the seed examples first), sent by an
authenticated caller to the facade served over HTTP. The private and dummy query routes are left
out (each request would start a query pod), and so are the Dioptra routes that write; cost,
metadata, dummy-data and budget routes are in, and half the bodies aim at PENGUIN, where the caller
has a budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from dpkube.api.settings import ApiSettings
from dpkube_testing.served import served_facade, served_settings

from .conftest import Caller

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (a dev dependency) is not installed")
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

EXAMPLES_PER_ROUTE = 60
SLOW_ROUTE_EXAMPLES = 15
SLOW_ROUTES = ("/estimate_smartnoise_synth_cost", "/estimate_diffprivlib_cost")
"""Cost routes that fit a model on the real data: fewer cases keep the whole run under a minute."""
POD_ROUTE_SUFFIX = "_query"
DIOPTRA_PREFIX = "/api/v0/"
PENGUIN = "PENGUIN"
"""Half the bodies name the caller's real dataset, so generated fields reach the engine, not just the 400."""


@dataclass(frozen=True)
class Finding:
    route: str
    status: int
    body: str
    request: str


def _fuzzed(path: str, method: str) -> bool:
    """Lomas routes that start no pod; Dioptra routes that only read (writes would leave objects in the
    session-wide system namespace that other tests list)."""
    if path.endswith(POD_ROUTE_SUFFIX):
        return False
    return not path.startswith(DIOPTRA_PREFIX) or method.upper() == "GET"


def _fuzz(operation, url: str, headers: dict[str, str], examples: int, findings: list[Finding],
          counts: dict[str, int]) -> None:
    """Send `examples` generated requests to one route; record every 5xx answer."""
    route = f"{operation.method.upper()} {operation.path}"

    @hypothesis.given(case=operation.as_strategy(), on_penguin=st.booleans())
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    def check(case, on_penguin: bool) -> None:
        if on_penguin and isinstance(case.body, dict) and "dataset_name" in case.body:
            case.body["dataset_name"] = PENGUIN
        response = case.call(base_url=url, headers=headers, timeout=60)
        counts[route] = counts.get(route, 0) + 1
        if response.status_code >= 500:
            findings.append(Finding(route, response.status_code, response.text[:300], case.as_curl_command()[:600]))

    check()


@pytest.fixture
def facade_settings(namespace: str, system_namespace: str, control_plane) -> ApiSettings:
    return served_settings(namespace, system_namespace, str(control_plane.kubeconfig))


def test_no_generated_request_gets_a_server_error(facade_settings: ApiSettings, caller: Caller) -> None:
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    started = time.monotonic()
    with served_facade(facade_settings) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            if not _fuzzed(operation.path, operation.method):
                continue
            examples = SLOW_ROUTE_EXAMPLES if operation.path in SLOW_ROUTES else EXAMPLES_PER_ROUTE
            _fuzz(operation, url, caller.headers, examples, findings, counts)
    elapsed = time.monotonic() - started
    assert counts, "no route was exercised"
    assert not findings, f"{len(findings)} server errors in {elapsed:.0f} s:\n" + "\n".join(
        f"{f.route} -> {f.status} {f.body}\n    {f.request}" for f in dict.fromkeys(findings))
