"""Lomas routes that read a dataset's public facts: state, metadata and dummy data (no pod, no budget)."""

from __future__ import annotations

import pytest

from dpkube.models import examples

UNKNOWN = "Dataset NOPE does not exist. Please, verify the client object initialisation."


async def test_root_redirects_to_state(http) -> None:
    response = await http.get("/")
    assert response.status_code == 307
    assert response.headers["location"].endswith("/state")


async def test_state_is_live_and_echoes_the_user_name_header(http) -> None:
    response = await http.get("/state", headers={"user-name": "Dr. Antartica"})
    assert response.status_code == 200
    assert response.json()["requested_by"] == "Dr. Antartica"
    assert response.json()["state"]["LIVE"] is True


async def test_metadata_of_penguin_has_lomas_defaults_filled_in(http, caller) -> None:
    response = await http.post("/get_dataset_metadata", json=examples.GET_DB_DATA, headers=caller.headers)
    assert response.status_code == 200
    metadata = response.json()
    assert (metadata["max_ids"], metadata["rows"], metadata["row_privacy"], metadata["censor_dims"]) == (
        1, 344, True, False)
    assert metadata["columns"]["species"] == {
        "private_id": False, "nullable": False, "max_partition_length": None, "max_influenced_partitions": None,
        "max_partition_contributions": None, "type": "string", "cardinality": 3,
        "categories": ["Adelie", "Chinstrap", "Gentoo"],
    }


async def test_metadata_lists_columns_in_file_order(http, caller) -> None:
    response = await http.post("/get_dataset_metadata", json=examples.GET_DB_DATA, headers=caller.headers)
    assert list(response.json()["columns"]) == examples.PENGUIN_COLUMNS


async def test_metadata_of_an_unknown_dataset_is_400_with_lomas_message(http, caller) -> None:
    response = await http.post("/get_dataset_metadata", json={"dataset_name": "NOPE"}, headers=caller.headers)
    assert (response.status_code, response.json()) == (400, {"InvalidQueryException": UNKNOWN})


async def test_metadata_of_a_dataset_without_a_grant_is_403(http, caller) -> None:
    response = await http.post("/get_dataset_metadata", json={"dataset_name": "TITANIC"}, headers=caller.headers)
    assert response.status_code == 403
    assert response.json() == {"UnauthorizedAccessException": f"{caller.name} does not have access to TITANIC."}


async def test_dummy_dataset_has_the_requested_rows_and_wire_dtypes(http, caller) -> None:
    response = await http.post("/get_dummy_dataset", json=examples.GET_DUMMY_DATASET, headers=caller.headers)
    assert response.status_code == 200
    body = response.json()
    assert len(body["dummy_dict"]) == 100
    assert body["dtypes"] == {
        "species": "string", "island": "string", "bill_length_mm": "float", "bill_depth_mm": "float",
        "flipper_length_mm": "float", "body_mass_g": "float", "sex": "string",
    }
    assert body["datetime_columns"] == []


async def test_dummy_dataset_is_lomas_bit_exact_for_seed_42(http, caller) -> None:
    response = await http.post("/get_dummy_dataset", json=examples.GET_DUMMY_DATASET, headers=caller.headers)
    first = response.json()["dummy_dict"][0]
    assert (first["species"], first["island"], first["sex"]) == ("Adelie", "Dream", "FEMALE")
    assert first["bill_length_mm"] == pytest.approx(61.800324174766246)


async def test_dummy_dataset_without_dummy_nb_rows_is_422_in_fastapi_shape(http, caller) -> None:
    response = await http.post("/get_dummy_dataset", json={"dataset_name": "PENGUIN", "dummy_seed": 1},
                               headers=caller.headers)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "dummy_nb_rows"]]


async def test_dummy_dataset_of_an_unknown_dataset_is_400(http, caller) -> None:
    response = await http.post("/get_dummy_dataset", json={**examples.GET_DUMMY_DATASET, "dataset_name": "NOPE"},
                               headers=caller.headers)
    assert (response.status_code, response.json()) == (400, {"InvalidQueryException": UNKNOWN})
