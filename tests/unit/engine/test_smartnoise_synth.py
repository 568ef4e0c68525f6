"""smartnoise-synth: the seed request, a charge that is never exceeded, and what is refused."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pandas as pd
import pytest

from dpkube.engine.cost import estimate_cost
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.errors import InvalidQuery, PayloadRejected
from dpkube.engine.libraries.smartnoise_synth_training import dpctgan_epsilon
from dpkube.engine.release import run_query
from dpkube.models.examples import query_payload as seed_query
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library

SYNTH = Library.SMARTNOISE_SYNTH
TINY_GAN = {"embedding_dim": 8, "batch_size": 50, "epochs": 1, "generator_dim": [16],
            "discriminator_dim": [16]}  # fmt: skip


@pytest.mark.slow
def test_seed_example_returns_a_pickled_dpctgan(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    release = run_query(SYNTH, seed_query(SYNTH), penguin_metadata, penguin_frame)
    model = pickle.loads(base64.b64decode(release.response))
    assert type(model).__name__ == "DPCTGAN"


def test_seed_example_costs_the_requested_epsilon_and_delta(penguin_metadata: Metadata) -> None:
    cost = estimate_cost(SYNTH, seed_query(SYNTH), penguin_metadata)
    assert (cost.epsilon, cost.delta) == (0.1, 1e-05)


@pytest.mark.slow
def test_samples_are_row_dicts_of_the_selected_columns(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    payload = seed_query(
        SYNTH, epsilon=1.0, synth_params=TINY_GAN, return_model=False, nb_samples=20,
        select_cols=["species", "bill_length_mm"],
    )  # fmt: skip
    rows = run_query(SYNTH, payload, penguin_metadata, penguin_frame).response
    assert len(rows) == 20
    assert set(rows[0]) == {"species", "bill_length_mm"}


@pytest.mark.slow
def test_dpctgan_never_logs_more_than_the_requested_epsilon(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = seed_query(SYNTH, epsilon=0.5, synth_params={**TINY_GAN, "epochs": 3})
    release = run_query(SYNTH, payload, penguin_metadata, penguin_frame)
    model = pickle.loads(base64.b64decode(release.response))
    trained = dpctgan_epsilon(len(model.epsilon_list), 344, 50, model.sigma, 1e-5, "cross_entropy")
    assert trained <= 0.5
    assert release.cost.epsilon == 0.5


def test_dpctgan_accounting_grows_with_epochs() -> None:
    one, five = (dpctgan_epsilon(e, 344, 50, 5.0, 1e-5, "cross_entropy") for e in (1, 5))
    assert 0 < one < five


@pytest.mark.slow
def test_mwem_on_two_columns_is_pure_dp(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    payload = seed_query(
        SYNTH, synth_name="mwem", delta=None, synth_params={"q_count": 50, "iterations": 5},
        select_cols=["species", "island"], return_model=False, nb_samples=5,
    )  # fmt: skip
    release = run_query(SYNTH, payload, penguin_metadata, penguin_frame)
    assert release.cost.delta == 0.0
    assert len(release.response) == 5


@pytest.mark.slow
def test_dummy_data_trains_too(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, epsilon=1.0, synth_params=TINY_GAN, return_model=False, nb_samples=3)
    frame = dummy_frame(penguin_metadata, 100, 42)
    assert len(run_query(SYNTH, payload, penguin_metadata, frame).response) == 3


def test_mwem_with_delta_is_refused_with_lomas_message(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_name="mwem", synth_params={}, select_cols=["species"])
    with pytest.raises(InvalidQuery, match="unexpected keyword argument 'delta'"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_pacsynth_is_refused_as_in_lomas(penguin_metadata: Metadata) -> None:
    with pytest.raises(InvalidQuery, match="pacsynth synthesizer not supported due to Rust panic"):
        estimate_cost(SYNTH, seed_query(SYNTH, synth_name="pacsynth"), penguin_metadata)


@pytest.mark.parametrize("name", ["patectgan", "pategan", "dpgan", "aim", "mst"])
def test_synthesizers_with_unbounded_or_unavailable_spend_are_refused(penguin_metadata: Metadata, name: str) -> None:
    with pytest.raises(PayloadRejected, match=f"{name} is not"):
        estimate_cost(SYNTH, seed_query(SYNTH, synth_name=name, synth_params={}), penguin_metadata)


def test_unknown_synth_param_is_rejected_naming_accepted_ones(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_params={"lr": 0.1})
    with pytest.raises(PayloadRejected, match="'lr' is not accepted for dpctgan; accepted: batch_size"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_epochs_are_bounded(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_params={"epochs": 10_000})
    with pytest.raises(PayloadRejected, match=r"synth_params epochs must be in \[1, 100\]"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_disabling_dp_is_rejected(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_params={"disabled_dp": True})
    with pytest.raises(PayloadRejected, match="may not set disabled_dp"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_unknown_select_col_is_refused(penguin_metadata: Metadata) -> None:
    with pytest.raises(InvalidQuery, match="Error while selecting provided select_cols"):
        estimate_cost(SYNTH, seed_query(SYNTH, select_cols=["beak"]), penguin_metadata)


def test_mwem_over_too_many_cells_is_rejected(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_name="mwem", delta=None, synth_params={})
    with pytest.raises(PayloadRejected, match=r"histogram of .* cells"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_constraint_transformer_spending_epsilon_is_rejected(penguin_metadata: Metadata) -> None:
    constraints = json.dumps(
        {
            "module": "smartnoise-synth",
            "version": "1.0.4",
            "constraints": {
                "bill_length_mm": {
                    "type": "_ssynth_transformer:MinMaxTransformer",
                    "params": {"epsilon": 1.0},
                }
            },
        }
    )
    with pytest.raises(PayloadRejected, match="MinMaxTransformer does not accept epsilon"):
        estimate_cost(SYNTH, seed_query(SYNTH, constraints=constraints), penguin_metadata)


def test_constraint_outside_allowlist_is_rejected(penguin_metadata: Metadata) -> None:
    constraints = json.dumps(
        {
            "module": "smartnoise-synth",
            "version": "1.0.4",
            "constraints": {"sex": {"type": "_ssynth_transformer:Evil", "params": {}}},
        }
    )
    with pytest.raises(PayloadRejected, match="transformer '_ssynth_transformer:Evil' is not allowed"):
        estimate_cost(SYNTH, seed_query(SYNTH, constraints=constraints), penguin_metadata)


def test_free_text_column_is_refused(penguin_metadata: Metadata) -> None:
    titanic = Metadata.model_validate(
        {"max_ids": 1, "rows": 10, "row_privacy": True, "columns": {"Name": {"type": "string"}}}
    )
    with pytest.raises(PayloadRejected, match="free-text columns cannot be synthesised"):
        estimate_cost(SYNTH, seed_query(SYNTH), titanic)


def constrained(column: str, *transformers: dict[str, Any]) -> str:
    node = transformers[0] if len(transformers) == 1 else {
        "type": "_ssynth_transformer:ChainTransformer", "params": list(transformers)}  # fmt: skip
    return json.dumps({"module": "smartnoise-synth", "version": "1.0.4", "constraints": {column: node}})


def transformer(name: str, **params: Any) -> dict[str, Any]:
    return {"type": f"_ssynth_transformer:{name}", "params": params}


def test_label_transformer_on_a_numeric_column_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, constraints=constrained("bill_length_mm", transformer("LabelTransformer")))
    with pytest.raises(PayloadRejected, match="LabelTransformer encodes only the categories of the metadata"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_clamp_window_before_a_label_transformer_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    window = constrained("body_mass_g", transformer("ClampTransformer", lower=5000, upper=5500),
                         transformer("LabelTransformer"))  # fmt: skip
    with pytest.raises(PayloadRejected, match="body_mass_g is a float column without categories"):
        estimate_cost(SYNTH, seed_query(SYNTH, constraints=window), penguin_metadata)


def test_transformer_failing_on_the_declared_bounds_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    log = constrained("bill_length_mm", transformer("ClampTransformer", lower=-5.0, upper=0.0),
                      transformer("LogTransformer"))  # fmt: skip
    with pytest.raises(PayloadRejected, match="bill_length_mm: ChainTransformer fails on values of the column's"):
        estimate_cost(SYNTH, seed_query(SYNTH, constraints=log), penguin_metadata)


def test_a_datetime_transformer_on_a_float_column_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, constraints=constrained("body_mass_g", transformer("DateTimeTransformer")))
    with pytest.raises(PayloadRejected, match="body_mass_g: DateTimeTransformer fails on values of the column's"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_batch_size_above_the_public_row_count_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_params={**TINY_GAN, "batch_size": 400})
    with pytest.raises(InvalidQuery, match=r"batch_size exceeds the number of rows \(344 by the metadata\)"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_a_condition_that_does_not_parse_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, return_model=False, condition="species = = 'Adelie'")
    with pytest.raises(PayloadRejected, match="condition is not a valid SQL WHERE clause"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_a_deeply_nested_condition_is_refused_by_the_scanner(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, return_model=False, condition="(" * 300 + "sex = 'MALE'" + ")" * 300)
    with pytest.raises(PayloadRejected, match="parentheses nest deeper than"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_mwem_splits_must_cover_each_encoded_column_once(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_name="mwem", delta=None, select_cols=["species", "island"],
                         synth_params={"splits": [[0], [0]]})  # fmt: skip
    with pytest.raises(PayloadRejected, match="splits must be lists of encoded column indices covering 0 to 1"):
        estimate_cost(SYNTH, payload, penguin_metadata)


@pytest.mark.slow
def test_a_condition_filters_the_samples(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    payload = seed_query(
        SYNTH, synth_name="mwem", delta=None, synth_params={"q_count": 20, "iterations": 3},
        select_cols=["species", "sex"], return_model=False, nb_samples=10, condition="sex = 'MALE'",
    )  # fmt: skip
    rows = run_query(SYNTH, payload, penguin_metadata, penguin_frame).response
    assert rows and {row["sex"] for row in rows} == {"MALE"}
