"""What costs nothing: each library's cost estimate (on the real data, never charged) and dummy queries."""

from __future__ import annotations

import pytest

from dpkube.models import examples
from dpkube.models.payloads import Library

pytestmark = pytest.mark.e2e


def test_smartnoise_sql_estimate_is_the_requested_epsilon_and_spends_nothing(lomas, budget) -> None:
    before = budget.remaining()
    response = lomas.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST)
    assert response.status_code == 200
    assert response.json()["epsilon_cost"] == pytest.approx(0.1)
    assert response.json()["delta_cost"] > 0
    assert budget.remaining() == before


def test_opendp_estimate_is_pure_dp_and_spends_nothing(lomas, budget) -> None:
    """The seed pipeline ends in a Laplace measurement: a positive epsilon, no delta."""
    before = budget.remaining()
    response = lomas.post("/estimate_opendp_cost", json=examples.OPENDP_COST)
    assert response.status_code == 200
    assert response.json()["epsilon_cost"] > 0 and response.json()["delta_cost"] == 0
    assert budget.remaining() == before


def test_diffprivlib_estimate_sums_the_pipeline_steps_and_spends_nothing(lomas, budget) -> None:
    """Scaler at epsilon 0.5 plus logistic regression at 1.0; estimating fits the model but charges nothing."""
    before = budget.remaining()
    response = lomas.post("/estimate_diffprivlib_cost", json=examples.DIFFPRIVLIB_COST)
    assert (response.status_code, response.json()) == (200, {"epsilon_cost": 1.5, "delta_cost": 0.0})
    assert budget.remaining() == before


@pytest.mark.parametrize("library", [Library.SMARTNOISE_SQL, Library.OPENDP, Library.DIFFPRIVLIB],
                         ids=lambda library: library.lomas_name)
def test_a_dummy_query_answers_with_its_cost_and_spends_nothing(lomas, budget, library) -> None:
    """Users debug their queries on dummy rows first; the answer says what the real query would cost."""
    before = budget.remaining()
    response = lomas.post(f"/dummy_{library.lomas_name}_query", json={**examples.QUERIES[library], **examples.DUMMY})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"query_response", "epsilon", "delta"}
    assert response.json()["epsilon"] > 0
    assert budget.remaining() == before
