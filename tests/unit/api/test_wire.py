"""The Lomas request bodies are the payload models made strict, never a second declaration of the fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dpkube.api.wire import COST_BODIES, DUMMY_BODIES, OPTIONAL_FIELDS, QUERY_BODIES, QUERY_ONLY_FIELDS
from dpkube.models import examples
from dpkube.models.payloads import PAYLOAD_TYPES, Library


@pytest.mark.parametrize("library", list(Library))
def test_a_query_body_is_dataset_name_then_every_payload_field(library: Library) -> None:
    assert list(QUERY_BODIES[library].model_fields) == ["dataset_name", *PAYLOAD_TYPES[library].model_fields]


@pytest.mark.parametrize("library", list(Library))
def test_a_dummy_body_ends_with_the_dummy_fields(library: Library) -> None:
    assert list(DUMMY_BODIES[library].model_fields)[-2:] == ["dummy_nb_rows", "dummy_seed"]


@pytest.mark.parametrize("library", list(Library))
def test_a_cost_body_lacks_only_the_query_only_fields(library: Library) -> None:
    missing = set(QUERY_BODIES[library].model_fields) - set(COST_BODIES[library].model_fields)
    assert missing == set(QUERY_ONLY_FIELDS.get(library, ()))


@pytest.mark.parametrize("library", list(Library))
def test_every_field_is_required_except_those_lomas_makes_optional(library: Library) -> None:
    optional = {name for name, info in QUERY_BODIES[library].model_fields.items() if not info.is_required()}
    assert optional == set(OPTIONAL_FIELDS.get(library, ()))


def test_synth_delta_and_opendp_fixed_delta_default_to_null() -> None:
    body = {k: v for k, v in examples.OPENDP_QUERY.items() if k != "fixed_delta"}
    assert QUERY_BODIES[Library.OPENDP].model_validate(body).fixed_delta is None  # type: ignore[attr-defined]


def test_diffprivlib_target_columns_must_be_sent_but_may_be_null() -> None:
    model = QUERY_BODIES[Library.DIFFPRIVLIB]
    assert model.model_validate({**examples.DIFFPRIVLIB_QUERY, "target_columns": None})
    with pytest.raises(ValidationError):
        model.model_validate({k: v for k, v in examples.DIFFPRIVLIB_QUERY.items() if k != "target_columns"})


def test_the_payload_models_bounds_apply_on_the_wire() -> None:
    with pytest.raises(ValidationError) as raised:
        QUERY_BODIES[Library.SMARTNOISE_SQL].model_validate({**examples.SMARTNOISE_SQL_QUERY, "epsilon": 0})
    assert raised.value.errors()[0]["loc"] == ("epsilon",)


def test_camel_case_names_are_not_wire_names() -> None:
    body = {"dataset_name": "PENGUIN", "queryStr": "SELECT COUNT(*) FROM df", "epsilon": 1.0, "delta": 1e-5,
            "mechanisms": {}, "postprocess": True}
    with pytest.raises(ValidationError):
        QUERY_BODIES[Library.SMARTNOISE_SQL].model_validate(body)


@pytest.mark.parametrize("library", list(Library))
def test_the_seed_examples_are_valid_bodies(library: Library) -> None:
    QUERY_BODIES[library].model_validate(examples.QUERIES[library])
    DUMMY_BODIES[library].model_validate({**examples.QUERIES[library], **examples.DUMMY})
    COST_BODIES[library].model_validate(examples.COSTS[library])
