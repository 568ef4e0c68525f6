"""Private queries, one per library: the answer comes back and exactly its reported cost leaves the budget.

Each query runs once (module fixtures) at a small epsilon, so the suite can run many times on one grant.
"""

from __future__ import annotations

import base64
import json
import pickle

import pandas as pd
import pytest

from dpkube.models import examples

pytestmark = pytest.mark.e2e

SQL_QUERY = examples.SMARTNOISE_SQL_QUERY
"""COUNT(*) at epsilon 0.1."""


def _opendp_query() -> dict:
    """The seed's variance pipeline with ten times the Laplace scale: a tenth of its epsilon (about 0.07)."""
    opendp = json.loads(examples.OPENDP_JSON)
    opendp["ast"]["rhs"]["kwargs"]["scale"] = 50.0
    return {**examples.OPENDP_QUERY, "opendp_json": json.dumps(opendp)}


def _diffprivlib_query() -> dict:
    """The seed's scaler + logistic regression at epsilon 0.05 + 0.1 instead of 0.5 + 1.0."""
    model = json.loads(examples.DIFFPRIVLIB_JSON)
    scaler, classifier = model["pipeline"]
    scaler["params"]["epsilon"], classifier["params"]["epsilon"] = 0.05, 0.1
    return {**examples.DIFFPRIVLIB_QUERY, "diffprivlib_json": json.dumps(model)}


OPENDP_QUERY = _opendp_query()
DIFFPRIVLIB_QUERY = _diffprivlib_query()


@pytest.fixture(scope="module")
def sql(charge):
    return charge("/smartnoise_sql_query", SQL_QUERY)


@pytest.fixture(scope="module")
def opendp(charge):
    return charge("/opendp_query", OPENDP_QUERY)


@pytest.fixture(scope="module")
def diffprivlib(charge):
    return charge("/diffprivlib_query", DIFFPRIVLIB_QUERY)


def test_a_sql_count_answers_a_noisy_positive_count(sql, target) -> None:
    reply = sql.reply
    assert reply["requested_by"] == target.user
    assert reply["query_response"]["columns"] == ["NB_ROW"]
    assert reply["query_response"]["data"][0][0] > 0


def test_a_sql_count_is_charged_its_requested_epsilon(sql) -> None:
    assert sql.reply["spent_epsilon"] == pytest.approx(0.1)
    assert 0 < sql.reply["spent_delta"] < 2 * SQL_QUERY["delta"]


def test_a_sql_count_takes_exactly_its_reported_cost_off_the_budget(sql) -> None:
    spent = sql.before.minus(sql.reply["spent_epsilon"], sql.reply["spent_delta"])
    assert sql.after == pytest.approx(spent)


def test_a_sql_query_costs_what_its_estimate_said(sql, lomas) -> None:
    """Users budget their work with the free estimate: it must be the charge."""
    estimate = lomas.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST).json()
    assert (sql.reply["spent_epsilon"], sql.reply["spent_delta"]) == (estimate["epsilon_cost"],
                                                                       estimate["delta_cost"])


def test_an_opendp_measurement_answers_a_number(opendp) -> None:
    assert isinstance(opendp.reply["query_response"], float)


def test_an_opendp_measurement_takes_exactly_its_reported_cost_off_the_budget(opendp) -> None:
    assert 0 < opendp.reply["spent_epsilon"] < 0.1 and opendp.reply["spent_delta"] == 0
    spent = opendp.before.minus(opendp.reply["spent_epsilon"], 0.0)
    assert opendp.after == pytest.approx(spent)


def test_a_diffprivlib_model_comes_back_fitted_and_predicts_species(diffprivlib, lomas) -> None:
    """Lomas clients unpickle the model and use it; here on dummy rows, which share the real data's schema."""
    model = pickle.loads(base64.b64decode(diffprivlib.reply["query_response"]["model"]))
    assert [name for name, _ in model.steps] == ["scaler", "classifier"]
    rows = lomas.post("/get_dummy_dataset", json=examples.GET_DUMMY_DATASET).json()["dummy_dict"]
    predicted = model.predict(pd.DataFrame(rows)[examples.PENGUIN_FEATURES])
    assert set(predicted) <= {"Adelie", "Chinstrap", "Gentoo"}


def test_a_diffprivlib_answer_has_no_score(diffprivlib) -> None:
    """Lomas scored the model on the raw test split, which is not differentially private: dpkube sends null."""
    assert diffprivlib.reply["query_response"]["score"] is None


def test_a_diffprivlib_model_takes_exactly_the_sum_of_its_steps_off_the_budget(diffprivlib) -> None:
    assert (diffprivlib.reply["spent_epsilon"], diffprivlib.reply["spent_delta"]) == (pytest.approx(0.15), 0.0)
    spent = diffprivlib.before.minus(diffprivlib.reply["spent_epsilon"], 0.0)
    assert diffprivlib.after == pytest.approx(spent)


@pytest.mark.parametrize(("answered", "body"), [("sql", SQL_QUERY), ("opendp", OPENDP_QUERY),
                                                ("diffprivlib", DIFFPRIVLIB_QUERY)])
def test_a_private_query_is_listed_with_the_body_sent_and_the_reply(request, lomas, answered, body) -> None:
    reply = request.getfixturevalue(answered).reply
    response = lomas.post("/get_previous_queries", json=examples.GET_DB_DATA)
    assert response.status_code == 200
    listed = [(record["client_input"], record["response"]) for record in response.json()["previous_queries"]]
    assert (body, reply) in listed


def test_total_spent_and_remaining_add_up_to_the_grant(lomas) -> None:
    initial = lomas.post("/get_initial_budget", json=examples.GET_DB_DATA).json()
    spent = lomas.post("/get_total_spent_budget", json=examples.GET_DB_DATA).json()
    remaining = lomas.post("/get_remaining_budget", json=examples.GET_DB_DATA).json()
    assert remaining["remaining_epsilon"] == pytest.approx(initial["initial_epsilon"] - spent["total_spent_epsilon"])
    assert remaining["remaining_delta"] == pytest.approx(initial["initial_delta"] - spent["total_spent_delta"])
