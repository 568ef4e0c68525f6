"""Lomas metadata: the shipped files parse unchanged; broken metadata is refused by field."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from dpkube.models.metadata import (
    DatetimeColumn,
    IntCategoricalColumn,
    Metadata,
    StrCategoricalColumn,
    StrColumn,
)


def shipped(name: str) -> dict[str, Any]:
    return yaml.safe_load((resources.files("dpkube.engine") / "demo" / name).read_text())


def metadata_with(column: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"max_ids": 1, "rows": 10, "row_privacy": True, "columns": {"c": column}, **top}


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as error:
        Metadata.model_validate(data)
    return str(error.value)


@pytest.mark.parametrize(
    "name", ["penguin_metadata.yaml", "titanic_metadata.yaml", "fso_income_synthetic_metadata.yaml"]
)
def test_shipped_metadata_parses_unchanged(name: str) -> None:
    assert Metadata.model_validate(shipped(name)).columns


def test_categorical_string_is_told_apart_from_free_text() -> None:
    penguin = Metadata.model_validate(shipped("penguin_metadata.yaml"))
    titanic = Metadata.model_validate(shipped("titanic_metadata.yaml"))
    assert isinstance(penguin.columns["species"], StrCategoricalColumn)
    assert isinstance(titanic.columns["Name"], StrColumn)


def test_int_categories_parse_as_int_categorical() -> None:
    fso = Metadata.model_validate(shipped("fso_income_synthetic_metadata.yaml"))
    assert isinstance(fso.columns["region"], IntCategoricalColumn)


def test_censor_dims_defaults_to_false() -> None:
    assert Metadata.model_validate(metadata_with({"type": "boolean"})).censor_dims is False


def test_lomas_dict_fills_defaults_and_formats_datetimes() -> None:
    data = metadata_with({"type": "datetime", "lower": "1900-01-01", "upper": "2000-01-01"})
    column = Metadata.model_validate(data).lomas_dict()["columns"]["c"]
    assert column["lower"] == "1900-01-01T00:00:00"
    assert column["private_id"] is False and column["nullable"] is False
    assert column["max_partition_length"] is None


def test_smartnoise_sql_metadata_exposes_table_df() -> None:
    penguin = Metadata.model_validate(shipped("penguin_metadata.yaml"))
    table = penguin.smartnoise_sql()[""][""]["df"]
    assert table["max_ids"] == 1
    assert table["bill_length_mm"] == {"type": "float", "nullable": False, "lower": 30.0, "upper": 65.0}


def test_camel_case_keys_are_accepted() -> None:
    data = {"maxIds": 2, "rows": 3, "rowPrivacy": True, "columns": {"c": {"type": "boolean"}}}
    assert Metadata.model_validate(data).max_ids == 2


def test_datetime_column_parses() -> None:
    data = metadata_with({"type": "datetime", "lower": "2000-01-01", "upper": "2001-01-01"})
    assert isinstance(Metadata.model_validate(data).columns["c"], DatetimeColumn)


def test_unknown_type_is_refused_naming_the_accepted_types() -> None:
    assert "type must be one of string, int, float, boolean, datetime" in refusal(metadata_with({"type": "decimal"}))


def test_categories_are_required_with_cardinality() -> None:
    assert "columns.c.string_categorical.categories" in refusal(metadata_with({"type": "string", "cardinality": 2}))


def test_categories_must_match_cardinality() -> None:
    message = refusal(metadata_with({"type": "string", "cardinality": 3, "categories": ["a"]}))
    assert "categories has 1 values but cardinality is 3" in message


def test_categories_are_typed() -> None:
    column = {"type": "int", "precision": 32, "cardinality": 2, "categories": ["a", "b"]}
    assert "columns.c.int_categorical.categories.0" in refusal(metadata_with(column))


@pytest.mark.parametrize(
    "column",
    [
        {"type": "int", "precision": 32, "lower": 5, "upper": 1},
        {"type": "float", "precision": 64, "lower": 5.0, "upper": 1.0},
        {"type": "datetime", "lower": "2001-01-01", "upper": "2000-01-01"},
    ],
)
def test_lower_above_upper_is_refused(column: dict[str, Any]) -> None:
    assert "must not exceed upper" in refusal(metadata_with(column))


def test_precision_is_32_or_64() -> None:
    column = {"type": "float", "precision": 16, "lower": 0.0, "upper": 1.0}
    assert "columns.c.float.precision" in refusal(metadata_with(column))


def test_int_bounds_must_be_integral() -> None:
    column = {"type": "int", "precision": 32, "lower": 0.5, "upper": 2}
    assert "columns.c.int.lower" in refusal(metadata_with(column))


@pytest.mark.parametrize(("field", "value"), [("rows", 0), ("max_ids", -1)])
def test_counts_must_be_positive(field: str, value: int) -> None:
    assert field in refusal(metadata_with({"type": "boolean"}, **{field: value}))


def test_misspelled_key_is_refused_by_name() -> None:
    column = {"type": "float", "precision": 64, "lower": 0.0, "upper": 1.0, "uper": 2.0}
    assert "columns.c.float.uper" in refusal(metadata_with(column))


def test_empty_columns_are_refused() -> None:
    assert "columns" in refusal({"max_ids": 1, "rows": 1, "row_privacy": True, "columns": {}})
