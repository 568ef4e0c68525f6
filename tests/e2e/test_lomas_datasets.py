"""What a Lomas user learns about PENGUIN before spending anything: its metadata and dummy rows."""

from __future__ import annotations

import pytest

from dpkube.models import examples

pytestmark = pytest.mark.e2e


def test_penguin_metadata_has_its_rows_and_columns_in_file_order(lomas) -> None:
    response = lomas.post("/get_dataset_metadata", json=examples.GET_DB_DATA)
    assert response.status_code == 200
    metadata = response.json()
    assert (metadata["max_ids"], metadata["rows"], metadata["row_privacy"]) == (1, 344, True)
    assert list(metadata["columns"]) == examples.PENGUIN_COLUMNS


def test_penguin_metadata_bounds_the_numeric_columns(lomas) -> None:
    """Smartnoise-sql and the dummy data rely on these bounds."""
    columns = lomas.post("/get_dataset_metadata", json=examples.GET_DB_DATA).json()["columns"]
    assert {name: (columns[name]["type"], columns[name]["lower"], columns[name]["upper"])
            for name in examples.PENGUIN_FEATURES} == {
        "bill_length_mm": ("float", 30.0, 65.0), "bill_depth_mm": ("float", 13.0, 23.0),
        "flipper_length_mm": ("float", 150.0, 250.0), "body_mass_g": ("float", 2000.0, 7000.0)}


def test_dummy_dataset_has_the_requested_rows_and_penguin_columns(lomas) -> None:
    response = lomas.post("/get_dummy_dataset", json={**examples.GET_DB_DATA, "dummy_nb_rows": 25, "dummy_seed": 7})
    assert response.status_code == 200
    rows = response.json()["dummy_dict"]
    assert len(rows) == 25
    assert all(list(row) == examples.PENGUIN_COLUMNS for row in rows)


def test_dummy_rows_respect_the_metadata(lomas) -> None:
    body = lomas.post("/get_dummy_dataset", json=examples.GET_DUMMY_DATASET).json()
    assert {row["species"] for row in body["dummy_dict"]} <= {"Adelie", "Chinstrap", "Gentoo"}
    assert all(30.0 <= row["bill_length_mm"] <= 65.0 for row in body["dummy_dict"])
    assert body["dtypes"]["body_mass_g"] == "float"


def test_the_same_seed_gives_the_same_dummy_rows(lomas) -> None:
    """Lomas users rely on it to reproduce a dummy run."""
    first = lomas.post("/get_dummy_dataset", json=examples.GET_DUMMY_DATASET).json()
    second = lomas.post("/get_dummy_dataset", json=examples.GET_DUMMY_DATASET).json()
    assert first == second
