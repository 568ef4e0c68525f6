"""The Lomas-style Python client against the real facade and platform, with the seed's examples.

The facade is served over HTTP in a thread; the synchronous client runs in worker threads so the
session's event loop keeps serving the API-server client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pandas as pd
import pytest

from dpkube.client import Client, ExternalLibraryException, InvalidQueryException, UnauthorizedAccessException
from dpkube.models import examples
from dpkube_testing.served import served_facade, served_settings

from .conftest import Caller

SQL = examples.SMARTNOISE_SQL_QUERY
SYNTH = examples.SMARTNOISE_SYNTH_QUERY
DPL = examples.DIFFPRIVLIB_QUERY


@pytest.fixture
def facade_url(namespace: str, system_namespace: str, control_plane) -> Iterator[str]:
    with served_facade(served_settings(namespace, system_namespace, str(control_plane.kubeconfig))) as url:
        yield url


@pytest.fixture
def client(facade_url: str, caller: Caller) -> Iterator[Client]:
    with Client(facade_url, caller.token, "PENGUIN") as lomas:
        yield lomas


@pytest.fixture
def platform(operator_process, node_agent) -> None:
    """Query pods run: the operator admits and charges, the node agent runs them."""


async def call(function, *args, **kwargs):
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_metadata_is_the_datasets_lomas_metadata(client: Client) -> None:
    metadata = await call(client.get_dataset_metadata)
    assert (metadata["max_ids"], metadata["rows"], metadata["row_privacy"]) == (1, 344, True)
    assert list(metadata["columns"]) == examples.PENGUIN_COLUMNS


async def test_the_dummy_dataset_is_a_dataframe_following_the_metadata(client: Client) -> None:
    frame = await call(client.get_dummy_dataset)
    assert frame.shape == (100, 7)
    assert list(frame.columns) == examples.PENGUIN_COLUMNS
    assert str(frame["species"].dtype) == "string"
    assert str(frame["bill_length_mm"].dtype) == "float64"
    assert frame["bill_length_mm"].between(30.0, 65.0).all()
    assert set(frame["species"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert (await call(client.get_dummy_dataset, nb_rows=10, seed=1)).shape == (10, 7)


async def test_a_fresh_caller_has_the_granted_budget_and_nothing_spent(client: Client) -> None:
    assert await call(client.get_initial_budget) == {"initial_epsilon": 10.0, "initial_delta": 0.005}
    assert await call(client.get_total_spent_budget) == {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0}
    assert await call(client.get_remaining_budget) == {"remaining_epsilon": 10.0, "remaining_delta": 0.005}
    assert await call(client.get_previous_queries) == []


async def test_cost_estimates_of_the_seed_examples(client: Client) -> None:
    sql = await call(client.smartnoise_sql.cost, SQL["query_str"], SQL["epsilon"], SQL["delta"], SQL["mechanisms"])
    assert sql["epsilon_cost"] == pytest.approx(0.1) and sql["delta_cost"] > 1e-5
    opendp = await call(client.opendp.cost, examples.OPENDP_JSON, fixed_delta=1e-5)
    assert opendp["epsilon_cost"] > 0.1 and opendp["delta_cost"] == 0
    dpl = await call(client.diffprivlib.cost, DPL["diffprivlib_json"], DPL["feature_columns"], DPL["target_columns"],
                     DPL["test_size"], DPL["test_train_split_seed"], DPL["imputer_strategy"])
    assert dpl == {"epsilon_cost": pytest.approx(1.5), "delta_cost": 0.0}


@pytest.mark.slow
async def test_synthesizer_cost_of_the_seed_example(client: Client) -> None:
    cost = await call(client.smartnoise_synth.cost, SYNTH["synth_name"], SYNTH["epsilon"], SYNTH["delta"],
                      synth_params=SYNTH["synth_params"], nullable=SYNTH["nullable"])
    assert cost["epsilon_cost"] >= 0.1 and cost["delta_cost"] >= 1e-5


async def test_errors_are_the_lomas_exception_types(client: Client, facade_url: str, caller: Caller) -> None:
    with pytest.raises(ExternalLibraryException) as library_error:
        await call(client.smartnoise_sql.cost, "SELECT AVG(bill) FROM df", 0.1, 1e-5)
    assert library_error.value.library == "smartnoise_sql"
    assert library_error.value.message == "Error obtaining cost: Column cannot be found bill"
    with Client(facade_url, caller.token, "NOPE") as unknown, pytest.raises(InvalidQueryException):
        await call(unknown.get_initial_budget)
    with Client(facade_url, "dpk_not-a-token", "PENGUIN") as stranger, pytest.raises(UnauthorizedAccessException):
        await call(stranger.get_initial_budget)


async def test_dummy_queries_of_the_seed_examples(client: Client, platform: None) -> None:
    sql = await call(client.smartnoise_sql.query, SQL["query_str"], SQL["epsilon"], SQL["delta"],
                     SQL["mechanisms"], dummy=True)
    assert isinstance(sql["query_response"], pd.DataFrame)
    assert 0 < sql["query_response"].loc[0, "NB_ROW"] < 250
    opendp = await call(client.opendp.dummy_query, examples.OPENDP_JSON, fixed_delta=1e-5)
    assert opendp["query_response"] > 0
    dpl = await call(client.diffprivlib.query, DPL["diffprivlib_json"], DPL["feature_columns"],
                     DPL["target_columns"], test_train_split_seed=4, dummy=True)
    assert isinstance(dpl["query_response"]["model"], str) and dpl["query_response"]["score"] is None
    assert await call(client.get_total_spent_budget) == {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0}


async def test_private_queries_are_charged_and_archived(client: Client, platform: None) -> None:
    sql = await call(client.smartnoise_sql.query, SQL["query_str"], SQL["epsilon"], SQL["delta"], SQL["mechanisms"])
    assert list(sql["query_response"].columns) == ["NB_ROW"] and sql["query_response"].loc[0, "NB_ROW"] > 0
    assert sql["spent_epsilon"] == pytest.approx(0.1) and sql["spent_delta"] >= 1e-5
    opendp = await call(client.opendp.query, examples.OPENDP_JSON, fixed_delta=1e-5)
    assert opendp["query_response"] > 0 and opendp["spent_delta"] == 0
    dpl = await call(client.diffprivlib.query, DPL["diffprivlib_json"], DPL["feature_columns"],
                     DPL["target_columns"], test_train_split_seed=4)
    assert dpl["spent_epsilon"] == pytest.approx(1.5) and isinstance(dpl["query_response"]["model"], str)
    assert "score" in dpl["query_response"]

    spent = await call(client.get_total_spent_budget)
    total = sql["spent_epsilon"] + opendp["spent_epsilon"] + dpl["spent_epsilon"]
    assert spent["total_spent_epsilon"] == pytest.approx(total)
    remaining = await call(client.get_remaining_budget)
    assert remaining["remaining_epsilon"] == pytest.approx(10.0 - total)

    records = await call(client.get_previous_queries)
    assert [r["dp_librairy"] for r in records] == ["smartnoise_sql", "opendp", "diffprivlib"]
    assert records[0]["client_input"] == SQL
    assert records[1]["client_input"] == examples.OPENDP_QUERY
    assert records[0]["response"]["spent_epsilon"] == sql["spent_epsilon"]
    assert records[0]["response"]["query_response"]["columns"] == ["NB_ROW"]


@pytest.mark.slow
async def test_a_synthetic_model_of_the_seed_example(client: Client, platform: None) -> None:
    answer = await call(client.smartnoise_synth.query, SYNTH["synth_name"], SYNTH["epsilon"], SYNTH["delta"],
                        synth_params=SYNTH["synth_params"], nullable=True, return_model=True)
    assert isinstance(answer["query_response"], str) and answer["spent_epsilon"] >= 0.1
