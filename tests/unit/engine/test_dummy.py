"""Dummy data: Lomas' generator, bit for bit, bounded in size and JSON-safe."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dpkube.engine.dummy import MAX_ROWS, dummy_dataset_response, dummy_frame
from dpkube.engine.errors import PayloadRejected
from dpkube.models.metadata import Metadata

ALL_KINDS = Metadata.model_validate(
    {
        "max_ids": 1,
        "rows": 10,
        "row_privacy": True,
        "columns": {
            "cat": {"type": "string", "cardinality": 3, "categories": ["a", "b", "c"]},
            "text": {"type": "string"},
            "flag": {"type": "boolean"},
            "small": {"type": "float", "precision": 32, "lower": 0.0, "upper": 1.0},
            "count": {"type": "int", "precision": 64, "lower": -5, "upper": 5},
            "day": {"type": "datetime", "lower": "2020-01-01", "upper": "2020-12-31"},
            "maybe": {"type": "int", "precision": 32, "lower": 0, "upper": 9, "nullable": True},
        },
    }
)


def test_penguin_seed_42_row_0_is_the_documented_row(penguin_metadata: Metadata) -> None:
    row = dummy_frame(penguin_metadata, 100, 42).iloc[0].tolist()
    assert row == [
        "Adelie", "Dream", 61.800324174766246, 20.774048382411777, 227.8996354578129,
        3509.6369572124577, "FEMALE",
    ]  # fmt: skip


def test_same_seed_gives_equal_frames(penguin_metadata: Metadata) -> None:
    pd.testing.assert_frame_equal(dummy_frame(penguin_metadata, 50, 7), dummy_frame(penguin_metadata, 50, 7))


def test_other_seed_gives_other_frame(penguin_metadata: Metadata) -> None:
    assert not dummy_frame(penguin_metadata, 50, 7).equals(dummy_frame(penguin_metadata, 50, 8))


def test_values_stay_within_metadata() -> None:
    frame = dummy_frame(ALL_KINDS, 1000, 1)
    assert set(frame["cat"]) == {"a", "b", "c"}
    assert frame["text"].str.len().eq(1).all()
    assert str(frame["flag"].dtype) == "boolean"
    assert str(frame["small"].dtype) == "float32"
    assert frame["small"].between(0, 1).all()
    assert str(frame["count"].dtype) == "int64"
    assert frame["count"].between(-5, 5).all()
    assert str(frame["day"].dtype) == "datetime64[ns]"
    assert frame["day"].notna().all()


def test_nullable_column_gets_between_one_and_five_nulls() -> None:
    assert 1 <= dummy_frame(ALL_KINDS, 100, 3)["maybe"].isna().sum() <= 5


@pytest.mark.parametrize("rows", [0, MAX_ROWS + 1])
def test_row_count_out_of_bounds_is_rejected(penguin_metadata: Metadata, rows: int) -> None:
    with pytest.raises(PayloadRejected, match=f"between 1 and {MAX_ROWS}"):
        dummy_frame(penguin_metadata, rows, 42)


def test_dummy_dataset_response_is_strict_json_with_nulls() -> None:
    response = dummy_dataset_response(ALL_KINDS, 100, 3)
    text = json.dumps(response, allow_nan=False)
    assert json.loads(text)["dtypes"] == {
        "cat": "string", "text": "string", "flag": "boolean", "small": "float", "count": "int",
        "day": "string", "maybe": "int",
    }  # fmt: skip
    assert response["datetime_columns"] == ["day"]
    assert any(row["maybe"] is None for row in response["dummy_dict"])
    assert len(response["dummy_dict"][0]["day"]) == len("2020-01-01T00:00:00")
