"""diffprivlib: the seed pipeline, the declared-epsilon charge, and what pipelines are refused."""

from __future__ import annotations

import base64
import json
import pickle
import warnings
from typing import Any

import diffprivlib.models
import pandas as pd
import pytest
from diffprivlib.utils import PrivacyLeakWarning

from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.engine.release import run_query
from dpkube.models.examples import DIFFPRIVLIB_JSON
from dpkube.models.examples import query_payload as seed_query
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library

DPL = Library.DIFFPRIVLIB
BOUNDS = {"_tuple": True, "_items": [[30.0, 13.0, 150.0, 2000.0], [65.0, 23.0, 250.0, 7000.0]]}


def with_steps(*steps: dict[str, Any], version: str = "0.6.4") -> str:
    return json.dumps({"module": "diffprivlib", "version": version, "pipeline": list(steps)})


def step(kind: str, **params: Any) -> dict[str, Any]:
    return {"type": f"_dpl_type:{kind}", "name": kind.lower(), "params": params}


def test_seed_example_returns_a_model_and_a_null_score(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    release = run_query(DPL, seed_query(DPL), penguin_metadata, penguin_frame)
    assert release.response["score"] is None
    model = pickle.loads(base64.b64decode(release.response["model"]))
    assert [name for name, _ in model.steps] == ["scaler", "classifier"]


def test_seed_example_costs_the_sum_of_declared_epsilons(penguin_metadata: Metadata) -> None:
    cost = estimate_cost(DPL, seed_query(DPL), penguin_metadata)
    assert (cost.epsilon, cost.delta) == (1.5, 0.0)


def test_fitted_accountants_spent_what_was_charged(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    release = run_query(DPL, seed_query(DPL), penguin_metadata, penguin_frame)
    model = pickle.loads(base64.b64decode(release.response["model"]))
    spent = sum(estimator.accountant.total()[0] for _, estimator in model.steps)
    assert spent == pytest.approx(release.cost.epsilon)


def test_null_accountant_is_charged_like_any_other(penguin_metadata: Metadata) -> None:
    pipeline = with_steps(step("StandardScaler", epsilon=0.7, bounds=BOUNDS, accountant=None))
    cost = estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)
    assert cost.epsilon == 0.7


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent"])
def test_imputation_strategies_fit(penguin_metadata: Metadata, penguin_frame: pd.DataFrame, strategy: str) -> None:
    payload = seed_query(DPL, imputer_strategy=strategy)
    assert run_query(DPL, payload, penguin_metadata, penguin_frame).response["model"]


def test_unknown_imputation_strategy_is_refused(penguin_metadata: Metadata) -> None:
    with pytest.raises(InvalidQuery, match=r"Imputation strategy magic not supported\."):
        estimate_cost(DPL, seed_query(DPL, imputer_strategy="magic"), penguin_metadata)


def test_unsupervised_models_fit_without_target(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    pipeline = with_steps(step("KMeans", n_clusters=3, epsilon=1.0, bounds=BOUNDS))
    payload = seed_query(DPL, diffprivlib_json=pipeline, target_columns=None)
    assert run_query(DPL, payload, penguin_metadata, penguin_frame).cost.epsilon == 1.0


def test_missing_bounds_are_rejected_before_any_fit(penguin_metadata: Metadata) -> None:
    pipeline = with_steps(step("StandardScaler", epsilon=0.5))
    with pytest.raises(PayloadRejected, match="StandardScaler must set bounds"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)


def test_missing_epsilon_is_rejected(penguin_metadata: Metadata) -> None:
    pipeline = with_steps(step("GaussianNB", bounds=BOUNDS))
    with pytest.raises(PayloadRejected, match="GaussianNB must set epsilon"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)


def test_privacy_leak_warning_at_fit_is_a_library_error_with_lomas_message(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def leaky_fit(self: object, *args: object, **kwargs: object) -> None:
        warnings.warn("bounds guessed from data", PrivacyLeakWarning, stacklevel=1)

    monkeypatch.setattr(diffprivlib.models.StandardScaler, "fit", leaky_fit)
    payload = seed_query(DPL, diffprivlib_json=with_steps(step("StandardScaler", epsilon=0.5, bounds=BOUNDS)))
    with pytest.raises(ExternalLibraryError) as error:
        run_query(DPL, payload, penguin_metadata, penguin_frame)
    assert error.value.message == (
        "PrivacyLeakWarning: bounds guessed from data. Lomas server cannot fit pipeline on data, "
        "PrivacyLeakWarning is a blocker."
    )


FEATURES_3 = {"_tuple": True, "_items": [[30.0, 13.0, 150.0], [65.0, 23.0, 250.0]]}
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.mark.parametrize(
    ("kind", "params", "columns"),
    [
        ("LogisticRegression", {"data_norm": 100.0}, {}),
        ("GaussianNB", {"bounds": BOUNDS}, {}),
        ("RandomForestClassifier", {"bounds": BOUNDS, "classes": CLASSES, "n_estimators": 5}, {}),
        ("DecisionTreeClassifier", {"bounds": BOUNDS, "classes": CLASSES, "max_depth": 3}, {}),
        ("KMeans", {"bounds": BOUNDS, "n_clusters": 3}, {}),
        ("PCA", {"bounds": BOUNDS, "data_norm": 100.0, "n_components": 2}, {}),
        (
            "LinearRegression",
            {"bounds_X": FEATURES_3, "bounds_y": {"_tuple": True, "_items": [2000.0, 7000.0]}},
            {
                "feature_columns": ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"],
                "target_columns": ["body_mass_g"],
            },
        ),
    ],
)
def test_every_allowlisted_model_fits_and_is_charged_its_epsilon(
    penguin_metadata: Metadata,
    penguin_frame: pd.DataFrame,
    kind: str,
    params: dict[str, Any],
    columns: dict[str, Any],
) -> None:
    payload = seed_query(DPL, diffprivlib_json=with_steps(step(kind, epsilon=0.8, **params)), **columns)
    assert run_query(DPL, payload, penguin_metadata, penguin_frame).cost.epsilon == 0.8


def test_non_diffprivlib_class_is_rejected(penguin_metadata: Metadata) -> None:
    pipeline = with_steps({"type": "_dpl_type:SVC", "name": "svc", "params": {}})
    with pytest.raises(PayloadRejected, match="type '_dpl_type:SVC'; allowed: _dpl_type:Decision"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)


def test_instance_other_than_budget_accountant_is_rejected(penguin_metadata: Metadata) -> None:
    params = {"epsilon": 0.5, "bounds": BOUNDS, "copy": "_dpl_instance:os.system"}
    pipeline = with_steps(step("StandardScaler", **params))
    with pytest.raises(PayloadRejected, match="only accountant may be"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)


def test_unknown_parameter_is_rejected(penguin_metadata: Metadata) -> None:
    pipeline = with_steps(step("StandardScaler", epsilon=0.5, bounds=BOUNDS, hook="x"))
    with pytest.raises(PayloadRejected, match="StandardScaler does not take hook"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)


def test_compute_heavy_parameter_is_bounded(penguin_metadata: Metadata) -> None:
    forest = step("RandomForestClassifier", epsilon=1.0, bounds=BOUNDS, classes=["Adelie"],
                  n_estimators=10_000)  # fmt: skip
    with pytest.raises(PayloadRejected, match=r"n_estimators must be an integer in \[1, 100\]"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=with_steps(forest)), penguin_metadata)


def test_newer_patch_version_is_accepted(penguin_metadata: Metadata) -> None:
    document = json.loads(DIFFPRIVLIB_JSON) | {"version": "0.6.6"}
    payload = seed_query(DPL, diffprivlib_json=json.dumps(document))
    assert estimate_cost(DPL, payload, penguin_metadata).epsilon == 1.5


def test_unsupported_version_is_rejected_naming_accepted_ones(penguin_metadata: Metadata) -> None:
    pipeline = with_steps(step("StandardScaler", epsilon=0.5, bounds=BOUNDS), version="0.5.0")
    with pytest.raises(PayloadRejected, match=r"version '0.5.0' is not supported; accepted: 0.6.x"):
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=pipeline), penguin_metadata)


def test_unknown_feature_column_is_refused(penguin_metadata: Metadata) -> None:
    with pytest.raises(InvalidQuery, match="columns not in the dataset: beak"):
        estimate_cost(DPL, seed_query(DPL, feature_columns=["beak"]), penguin_metadata)


def refused(metadata: Metadata, *steps: dict[str, Any], **changes: Any) -> str:
    """The refusal `estimate_cost` gives a pipeline of `steps`: it is decided before any data is read."""
    with pytest.raises(InvalidQuery) as error:
        estimate_cost(DPL, seed_query(DPL, diffprivlib_json=with_steps(*steps), **changes), metadata)
    return error.value.message


def test_a_chosen_random_state_is_refused_because_it_replays_the_noise(penguin_metadata: Metadata) -> None:
    message = refused(penguin_metadata, step("GaussianNB", epsilon=1.0, bounds=BOUNDS, random_state=42))
    assert message == "GaussianNB.random_state must be null: a chosen seed makes the noise replayable"


def test_a_classifier_on_a_continuous_target_is_refused(penguin_metadata: Metadata) -> None:
    message = refused(
        penguin_metadata, step("GaussianNB", epsilon=1.0, bounds=FEATURES_3),
        feature_columns=["bill_length_mm", "bill_depth_mm", "flipper_length_mm"], target_columns=["body_mass_g"],
    )  # fmt: skip
    assert message.startswith("GaussianNB needs exactly one target column, categorical with its categories")


def test_tree_classes_outside_the_metadata_categories_are_refused(penguin_metadata: Metadata) -> None:
    forest = step("RandomForestClassifier", epsilon=1.0, bounds=BOUNDS, classes=["Adelie", "Emperor"])
    assert "classes must list distinct categories of species" in refused(penguin_metadata, forest)


def test_a_regression_on_a_categorical_target_is_refused(penguin_metadata: Metadata) -> None:
    regression = step("LinearRegression", epsilon=1.0, bounds_X=BOUNDS, bounds_y={"_tuple": True, "_items": [0, 1]})
    assert refused(penguin_metadata, regression).startswith("LinearRegression needs numeric target columns")


def test_bounds_narrower_than_the_features_are_refused(penguin_metadata: Metadata) -> None:
    message = refused(penguin_metadata, step("GaussianNB", epsilon=1.0, bounds=FEATURES_3))
    assert message.startswith("GaussianNB.bounds:") and message.endswith("(the step's input has 4 columns)")


def test_bounds_after_pca_are_checked_against_its_components(penguin_metadata: Metadata) -> None:
    pca = step("PCA", epsilon=0.5, bounds=BOUNDS, data_norm=100.0, n_components=2)
    message = refused(penguin_metadata, pca, step("GaussianNB", epsilon=1.0, bounds=BOUNDS))
    assert message.endswith("(the step's input has 2 columns)")


def test_a_classifier_before_another_step_is_refused(penguin_metadata: Metadata) -> None:
    message = refused(penguin_metadata, step("GaussianNB", epsilon=1.0, bounds=BOUNDS),
                      step("StandardScaler", epsilon=1.0, bounds=BOUNDS))  # fmt: skip
    assert message.startswith("pipeline step 0 (gaussiannb) is a GaussianNB; only StandardScaler, PCA, KMeans")


def test_pca_choosing_components_from_the_training_size_is_refused(penguin_metadata: Metadata) -> None:
    pca = step("PCA", epsilon=1.0, bounds=BOUNDS, data_norm=100.0, n_components="mle")
    assert "'mle' reads the training size" in refused(penguin_metadata, pca, target_columns=None)


def test_more_clusters_than_public_training_rows_are_refused(penguin_metadata: Metadata) -> None:
    kmeans = step("KMeans", epsilon=1.0, bounds=BOUNDS, n_clusters=100)
    message = refused(penguin_metadata, kmeans, target_columns=None, test_size=0.9)
    assert message == "KMeans.n_clusters must not exceed the training rows (34 by the metadata)"


def test_text_features_are_refused(penguin_metadata: Metadata) -> None:
    scaler = step("StandardScaler", epsilon=1.0, bounds={"_tuple": True, "_items": [0, 1]})
    assert refused(penguin_metadata, scaler, feature_columns=["island"]) == (
        "feature columns must be numeric (int or float): island"
    )


def test_forests_are_bounded_by_their_total_leaves(penguin_metadata: Metadata) -> None:
    forest = step("RandomForestClassifier", epsilon=1.0, bounds=BOUNDS, classes=CLASSES, n_estimators=100,
                  max_depth=12)  # fmt: skip
    assert refused(penguin_metadata, forest).endswith("must not exceed 65536 leaves")


def test_library_parameter_types_are_checked_before_reading(penguin_metadata: Metadata) -> None:
    logistic = step("LogisticRegression", epsilon=1.0, data_norm=10.0, C=-1.0)
    assert refused(penguin_metadata, logistic).startswith("LogisticRegression: The 'C' parameter")


def test_progress_output_is_refused(penguin_metadata: Metadata) -> None:
    logistic = step("LogisticRegression", epsilon=1.0, data_norm=10.0, verbose=1)
    assert refused(penguin_metadata, logistic).startswith("LogisticRegression.verbose must be 0")


@pytest.mark.parametrize("kind", ["GaussianNB", "LogisticRegression"])
def test_classifiers_know_every_category_even_one_absent_from_the_data(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame, kind: str
) -> None:
    params = {"bounds": BOUNDS} if kind == "GaussianNB" else {"data_norm": 100.0}
    payload = seed_query(DPL, diffprivlib_json=with_steps(step(kind, epsilon=1.0, **params)))
    adelie_only = penguin_frame[penguin_frame["species"] == "Adelie"]
    release = run_query(DPL, payload, penguin_metadata, adelie_only)
    model = pickle.loads(base64.b64decode(release.response["model"]))
    assert list(model.steps[-1][1].classes_) == CLASSES
    assert set(model.predict(adelie_only[payload["feature_columns"]].dropna())) <= set(CLASSES)


def test_priors_must_match_the_target_categories(penguin_metadata: Metadata) -> None:
    message = refused(penguin_metadata, step("GaussianNB", epsilon=1.0, bounds=BOUNDS, priors=[0.5, 0.5]))
    assert message.startswith("GaussianNB.priors must list 3 non-negative numbers summing to 1")
