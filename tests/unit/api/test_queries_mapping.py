"""How a Lomas request becomes a DPQuery, and how the DPQuery's end becomes a Lomas answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dpkube.api.errors import (
    ExternalLibraryException,
    InternalServerException,
    InvalidQueryException,
    UnauthorizedAccessException,
)
from dpkube.api.services.queries import (
    CLIENT_INPUT_ANNOTATION,
    DATASET_LABEL,
    USER_LABEL,
    Queries,
    owner_selector,
    user_hash,
)
from dpkube.api.wire import DUMMY_BODIES, QUERY_BODIES
from dpkube.models import examples
from dpkube.models.dpquery import SUBMITTED_AT_ANNOTATION, DPQuerySpec, Mode
from dpkube.models.payloads import Library

SQL = Library.SMARTNOISE_SQL


@pytest.fixture
def queries() -> Queries:
    return Queries(client=None, namespace="dpkube", datasets=None, budgets=None, wait_seconds=1)  # type: ignore[arg-type]


def manifest(queries: Queries, user: str = "Dr. Antartica", mode: Mode = Mode.QUERY,
             body: dict[str, Any] | None = None) -> dict[str, Any]:
    models = DUMMY_BODIES if mode == Mode.DUMMY else QUERY_BODIES
    return queries.manifest(user, SQL, mode, models[SQL].model_validate(body or examples.SMARTNOISE_SQL_QUERY))


def test_the_query_is_in_the_authenticated_users_name(queries) -> None:
    assert manifest(queries)["spec"]["user"] == "Dr. Antartica"


def test_the_spec_is_a_valid_dpquery_with_the_payload_of_its_library(queries) -> None:
    spec = DPQuerySpec.model_validate(manifest(queries)["spec"])
    assert spec.library == SQL
    assert spec.payload.model_dump() == examples.payload_fields(SQL, examples.SMARTNOISE_SQL_QUERY)


def test_the_user_label_is_a_hash_because_label_values_cannot_hold_every_name(queries) -> None:
    labels = manifest(queries)["metadata"]["labels"]
    assert labels[USER_LABEL] == user_hash("Dr. Antartica")
    assert labels[DATASET_LABEL] == "penguin"


def test_the_validated_client_body_is_kept_for_the_archive(queries) -> None:
    annotations = manifest(queries)["metadata"]["annotations"]
    assert json.loads(annotations[CLIENT_INPUT_ANNOTATION]) == examples.SMARTNOISE_SQL_QUERY
    assert float(annotations[SUBMITTED_AT_ANNOTATION]) > 0


def test_a_dummy_query_carries_the_dummy_rows_and_seed(queries) -> None:
    body = {**examples.SMARTNOISE_SQL_QUERY, "dummy_nb_rows": 7, "dummy_seed": 3}
    spec = manifest(queries, mode=Mode.DUMMY, body=body)["spec"]
    assert (spec["mode"], spec["dummy"]) == ("dummy", {"rows": 7, "seed": 3})


def test_the_namespace_is_the_configured_one(queries) -> None:
    assert manifest(queries)["metadata"]["namespace"] == "dpkube"


def test_the_owner_selector_matches_the_labels(queries) -> None:
    labels = manifest(queries)["metadata"]["labels"]
    assert owner_selector("Dr. Antartica", "PENGUIN") == f"{USER_LABEL}={labels[USER_LABEL]},{DATASET_LABEL}=penguin"


def ended(phase: str, reason: str, message: str = "why") -> dict[str, Any]:
    return {"metadata": {"name": "q", "namespace": "dpkube"},
            "spec": {"dataset": "PENGUIN", "library": "smartnoise-sql"},
            "status": {"phase": phase, "message": message,
                       "conditions": [{"type": "Complete", "status": "True", "reason": reason,
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


@pytest.mark.parametrize("reason,error", [
    ("InsufficientBudget", InvalidQueryException),
    ("NoBudgetGrant", UnauthorizedAccessException),
    ("UserNotAllowed", UnauthorizedAccessException),
    ("InvalidQuery", InvalidQueryException),
    ("DatasetNotFound", InvalidQueryException),
    ("LibraryError", ExternalLibraryException),
    ("FailedOnPrivateData", ExternalLibraryException),
    ("CostMismatch", InternalServerException),
    ("SomethingElse", InternalServerException),
])
async def test_a_refusal_maps_to_the_lomas_error_by_its_condition_reason(queries, reason, error) -> None:
    with pytest.raises(error):
        await queries.outcome(ended("Rejected", reason))


async def test_the_operators_message_is_the_lomas_message(queries) -> None:
    message = "Not enough budget for this query epsilon remaining 2.0, delta remaining 0.00497."
    with pytest.raises(InvalidQueryException) as raised:
        await queries.outcome(ended("Rejected", "InsufficientBudget", message))
    assert raised.value.message == message


async def test_a_success_answers_the_inline_result_and_the_charge(queries) -> None:
    query = {"metadata": {"name": "q", "namespace": "dpkube"}, "spec": {"library": "smartnoise-sql"}, "status": {
        "phase": "Succeeded", "result": {"data": [[1]]}, "spent": {"epsilon": 0.1, "delta": 1e-5},
        "cost": {"epsilon": 0.1, "delta": 1e-5}}}
    outcome = await queries.outcome(query)
    assert (outcome.response, outcome.spent.epsilon, outcome.spent.delta) == ({"data": [[1]]}, 0.1, 1e-5)
