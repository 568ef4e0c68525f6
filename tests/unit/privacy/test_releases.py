"""The privacy battery: every released object of every allowed class walked for what it must not
carry (`dpkube_testing.leaks`), and one test per engine-level leak of issue 10 (items 1 to 6).

Models are fitted on the real PENGUIN table through the engine's own entry points
(`estimate_cost`, `run_query`), unpickled as the Lomas client does, then walked.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pandas as pd
import pytest

from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import InvalidQuery, PayloadRejected
from dpkube.engine.release import run_query
from dpkube.models.examples import query_payload as seed_query
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library
from dpkube_testing.leaks import Private, findings, private_facts, recurring_findings, unpickle

DPL, SYNTH = Library.DIFFPRIVLIB, Library.SMARTNOISE_SYNTH
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
BOUNDS = {"_tuple": True, "_items": [[30.0, 13.0, 150.0, 2000.0], [65.0, 23.0, 250.0, 7000.0]]}
BOUNDS_3 = {"_tuple": True, "_items": [[30.0, 13.0, 150.0], [65.0, 23.0, 250.0]]}
UNIT = {"_tuple": True, "_items": [-5.0, 5.0]}
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
TINY_GAN = {"embedding_dim": 8, "batch_size": 50, "epochs": 2, "generator_dim": [16], "discriminator_dim": [16]}
SYNTH_COLUMNS = ["species", "island", "sex", "bill_length_mm"]


def step(kind: str, **params: Any) -> dict[str, Any]:
    return {"type": f"_dpl_type:{kind}", "name": kind.lower(), "params": params}


def pipeline(*steps: dict[str, Any]) -> str:
    return json.dumps({"module": "diffprivlib", "version": "0.6.4", "pipeline": list(steps)})


UNSUPERVISED = {"target_columns": None}
MODELS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "GaussianNB": ([step("GaussianNB", epsilon=0.05, bounds=BOUNDS)], {}),
    "LogisticRegression": ([step("LogisticRegression", epsilon=1.0, data_norm=7100.0)], {}),
    "DecisionTreeClassifier": ([step("DecisionTreeClassifier", epsilon=1.0, bounds=BOUNDS, classes=CLASSES,
                                     max_depth=4)], {}),
    "RandomForestClassifier": ([step("RandomForestClassifier", epsilon=1.0, bounds=BOUNDS, classes=CLASSES,
                                     n_estimators=4, max_depth=3)], {}),
    "KMeans": ([step("KMeans", epsilon=1.0, bounds=BOUNDS, n_clusters=3)], UNSUPERVISED),
    "PCA": ([step("PCA", epsilon=1.0, bounds=BOUNDS, data_norm=7100.0, n_components=2)], UNSUPERVISED),
    "StandardScaler": ([step("StandardScaler", epsilon=1.0, bounds=BOUNDS)], UNSUPERVISED),
    "LinearRegression": (
        [step("LinearRegression", epsilon=1.0, bounds_X=BOUNDS_3, bounds_y={"_tuple": True, "_items": [2e3, 7e3]})],
        {"feature_columns": FEATURES[:3], "target_columns": ["body_mass_g"]},
    ),
    "StandardScaler+LogisticRegression (Lomas seed)": ([], {}),
    "StandardScaler+PCA+GaussianNB": ([
        step("StandardScaler", epsilon=0.5, bounds=BOUNDS),
        step("PCA", epsilon=0.5, bounds=UNIT, data_norm=10.0, n_components=2),
        step("GaussianNB", epsilon=0.05, bounds=UNIT),
    ], {}),
    "StandardScaler+KMeans": ([
        step("StandardScaler", epsilon=0.5, bounds=BOUNDS), step("KMeans", epsilon=1.0, bounds=UNIT, n_clusters=4),
    ], UNSUPERVISED),
}  # fmt: skip
"""Every allowlisted diffprivlib class alone, and pipelines with scalers and PCA."""


def diffprivlib_payload(name: str) -> dict[str, Any]:
    steps, changes = MODELS[name]
    return seed_query(DPL, **({"diffprivlib_json": pipeline(*steps)} if steps else {}), **changes)


def public_facts(metadata: Metadata) -> dict[str, Any]:
    """What the metadata gives away anyway: its row count, the public training size, bounds and categories."""
    rows = metadata.rows
    values = {
        name: set(getattr(column, "categories", [])) | {getattr(column, "lower", None), getattr(column, "upper", None)}
        for name, column in metadata.columns.items()
    }
    return {"public_counts": {rows, rows - math.ceil(0.2 * rows)}, "public_values": values}


def diffprivlib_private(payload: dict[str, Any], metadata: Metadata, frame: pd.DataFrame) -> Private:
    used = payload["feature_columns"] + (payload.get("target_columns") or [])
    kept = len(frame[used].dropna())
    train = kept - math.ceil(payload.get("test_size", 0.2) * kept)
    return private_facts(frame, {kept, train}, **public_facts(metadata))


def released(library: Library, payload: dict[str, Any], metadata: Metadata, frame: pd.DataFrame) -> tuple[Any, set]:
    response = run_query(library, payload, metadata, frame).response
    encoded = response["model"] if library is DPL else response
    return unpickle(base64.b64decode(encoded))


@pytest.mark.parametrize("name", MODELS)
def test_released_diffprivlib_model_carries_nothing_private(
    name: str, penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = diffprivlib_payload(name)
    private = diffprivlib_private(payload, penguin_metadata, penguin_frame)
    assert recurring_findings(lambda: released(DPL, payload, penguin_metadata, penguin_frame)[0], private) == []


@pytest.mark.parametrize("name", MODELS)
def test_released_diffprivlib_model_still_predicts_or_transforms(
    name: str, penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = diffprivlib_payload(name)
    model, modules = released(DPL, payload, penguin_metadata, penguin_frame)
    rows = penguin_frame[payload["feature_columns"]].dropna().head(5)
    output = model.predict(rows) if hasattr(model.steps[-1][1], "predict") else model.transform(rows)
    assert len(output) == 5
    assert not any(module.startswith("dpkube") for module in modules)


@pytest.fixture(scope="module")
def synth_releases(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> dict[str, tuple[Any, set, Private]]:
    """One released model per allowed synthesizer (fitted once: a GAN takes seconds)."""
    payloads = {
        "mwem": seed_query(SYNTH, synth_name="mwem", epsilon=1.0, delta=None, select_cols=SYNTH_COLUMNS,
                           synth_params={"q_count": 20, "iterations": 4}),
        "dpctgan": seed_query(SYNTH, epsilon=1.0, synth_params=TINY_GAN),
    }  # fmt: skip
    private = private_facts(penguin_frame, set(), **public_facts(penguin_metadata))
    return {name: (*released(SYNTH, p, penguin_metadata, penguin_frame), private) for name, p in payloads.items()}


@pytest.mark.slow
@pytest.mark.parametrize("synth", ["mwem", "dpctgan"])
def test_released_synthesizer_carries_nothing_private(synth: str, synth_releases: dict) -> None:
    model, _, private = synth_releases[synth]
    assert findings(model, private) == []


@pytest.mark.slow
@pytest.mark.parametrize("synth", ["mwem", "dpctgan"])
def test_released_synthesizer_unpickles_without_dpkube_and_samples_metadata_values(
    synth: str, synth_releases: dict, penguin_metadata: Metadata
) -> None:
    model, modules, _ = synth_releases[synth]
    columns = SYNTH_COLUMNS if synth == "mwem" else list(penguin_metadata.columns)
    samples = pd.DataFrame(model.sample(50), columns=columns)
    assert len(samples) == 50
    assert not any(module.startswith("dpkube") for module in modules)
    for name in columns:
        column = penguin_metadata.columns[name]
        values = samples[name].dropna()
        if hasattr(column, "categories"):
            assert set(values) <= set(column.categories), name
        else:
            assert values.between(column.lower, column.upper).all(), name


# Issue 10, item 1: synthesizer models held their training table.


@pytest.mark.slow
def test_mwem_model_at_epsilon_005_holds_no_training_table_or_exact_histogram(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = seed_query(SYNTH, synth_name="mwem", epsilon=0.05, delta=None, select_cols=SYNTH_COLUMNS,
                         synth_params={"q_count": 20, "iterations": 4})  # fmt: skip
    model, _ = released(SYNTH, payload, penguin_metadata, penguin_frame)
    assert findings(model, private_facts(penguin_frame, set(), **public_facts(penguin_metadata))) == []
    assert getattr(model, "data", None) is None
    assert all(real is None for _, real, _ in model.synthetic_histograms)


@pytest.mark.slow
def test_untrained_dpctgan_model_holds_no_transformed_training_data(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = seed_query(SYNTH, epsilon=0.05, synth_params=TINY_GAN)
    model, _ = released(SYNTH, payload, penguin_metadata, penguin_frame)
    assert model._epochs == 0
    assert findings(model, private_facts(penguin_frame, set(), **public_facts(penguin_metadata))) == []
    assert len(model._data_sampler._data) == 0


# Issue 10, item 2: classifiers released classes read from a continuous target.


@pytest.mark.parametrize("kind", ["GaussianNB", "LogisticRegression"])
def test_classifier_on_a_continuous_target_is_refused_before_reading(kind: str, penguin_metadata: Metadata) -> None:
    params = {"bounds": BOUNDS_3} if kind == "GaussianNB" else {"data_norm": 300.0}
    payload = seed_query(DPL, diffprivlib_json=pipeline(step(kind, epsilon=1.0, **params)),
                         feature_columns=FEATURES[:3], target_columns=["body_mass_g"])  # fmt: skip
    with pytest.raises(InvalidQuery, match="categorical with its categories in the metadata"):
        estimate_cost(DPL, payload, penguin_metadata)


def test_classifier_classes_are_the_metadata_categories(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    model, _ = released(DPL, diffprivlib_payload("GaussianNB"), penguin_metadata, penguin_frame)
    assert list(model.steps[-1][1].classes_) == CLASSES


# Issue 10, item 3: per-row and exact attributes.


def test_kmeans_release_has_no_per_row_labels_or_exact_inertia(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = diffprivlib_payload("KMeans")
    kmeans = released(DPL, payload, penguin_metadata, penguin_frame)[0].steps[-1][1]
    assert findings(kmeans, diffprivlib_private(payload, penguin_metadata, penguin_frame)) == []
    assert getattr(kmeans, "labels_", None) is None
    assert getattr(kmeans, "inertia_", None) is None


@pytest.mark.parametrize(("name", "count"), [("StandardScaler", "n_samples_seen_"), ("PCA", "n_samples_")])
def test_scaler_and_pca_releases_have_no_exact_sample_count(
    name: str, count: str, penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    estimator = released(DPL, diffprivlib_payload(name), penguin_metadata, penguin_frame)[0].steps[-1][1]
    assert not hasattr(estimator, count)


def test_gaussian_nb_noisy_counts_are_not_forced_to_the_exact_training_size(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = diffprivlib_payload("GaussianNB")
    train = min(diffprivlib_private(payload, penguin_metadata, penguin_frame).lengths)

    def counts_sum() -> float:
        return float(released(DPL, payload, penguin_metadata, penguin_frame)[0].steps[-1][1].class_count_.sum())

    assert [counts_sum() for _ in range(5)] != [train] * 5


# Issue 10, item 4: replayable noise.


def test_a_chosen_random_state_is_refused(penguin_metadata: Metadata) -> None:
    scaler = step("StandardScaler", epsilon=1.0, bounds=BOUNDS, random_state=1234)
    with pytest.raises(PayloadRejected, match="random_state must be null"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline(scaler), **UNSUPERVISED), penguin_metadata)


def test_forest_trees_are_released_without_their_seeds(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    forest = released(DPL, diffprivlib_payload("RandomForestClassifier"), penguin_metadata, penguin_frame)[0]
    assert [tree.random_state for tree in forest.steps[-1][1].estimators_] == [None] * 4


# Issue 10, item 5: constraints that fail on the data quoted it, for free.


def constraint(column: str, *transformers: dict[str, Any]) -> str:
    node = transformers[0] if len(transformers) == 1 else {
        "type": "_ssynth_transformer:ChainTransformer", "params": list(transformers)}  # fmt: skip
    return json.dumps({"module": "smartnoise-synth", "version": "1.0.4", "constraints": {column: node}})


def transformer(name: str, **params: Any) -> dict[str, Any]:
    return {"type": f"_ssynth_transformer:{name}", "params": params}


def test_label_transformer_on_a_numeric_column_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, constraints=constraint("bill_length_mm", transformer("LabelTransformer")))
    with pytest.raises(PayloadRejected):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_sliding_clamp_window_before_a_label_transformer_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    window = constraint("body_mass_g", transformer("ClampTransformer", lower=5000.0, upper=5500.0),
                        transformer("LabelTransformer"))  # fmt: skip
    with pytest.raises(PayloadRejected):
        estimate_cost(SYNTH, seed_query(SYNTH, constraints=window), penguin_metadata)


# Issue 10, item 6 (engine side): outcomes that depended on the data and cost nothing.


def test_batch_size_is_compared_with_the_public_row_count_before_reading(penguin_metadata: Metadata) -> None:
    payload = seed_query(SYNTH, synth_params={**TINY_GAN, "batch_size": 346})
    with pytest.raises(InvalidQuery, match="batch_size exceeds the number of rows"):
        estimate_cost(SYNTH, payload, penguin_metadata)


def test_a_single_class_in_the_data_still_releases_a_model(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = diffprivlib_payload("LogisticRegression")
    adelie = penguin_frame[penguin_frame["species"] == "Adelie"]
    model, _ = released(DPL, payload, penguin_metadata, adelie)
    assert list(model.steps[-1][1].classes_) == CLASSES

