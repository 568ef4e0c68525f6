"""diffprivlib: a scikit-learn pipeline of diffprivlib steps, priced by the epsilons it declares.

Everything the request and the metadata decide is checked in `cost`, before any data is read:
column types, target rules (a classifier's target is one categorical column and its classes are
the metadata's categories; a regression's targets are numeric and clipped to `bounds_y`), bounds
against each step's input width, parameter types, compute limits, and no `random_state` (a chosen
seed makes the noise replayable). `run` fits over public facts (`diffprivlib_fitting`) and
releases a pipeline rebuilt from per-class allowlists (`diffprivlib_release`), never the fitted one.
`test_train_split_seed` is kept: it picks which rows are held out, no noise, and the guarantee
holds for any training subset.

Fixes three Lomas faults: every step gets its own fresh BudgetAccountant (a null accountant fell
back to the process-wide one), the charge is the declared sum and is checked against what each
accountant recorded after fitting (all entries, not the first), and `score` is null because
Lomas computed it on the raw test split, which is not differentially private. Imputation uses
public metadata (mid-range of bounds, first category), never statistics of the private data.
"""

from __future__ import annotations

import base64
import inspect
import math
import pickle
import warnings
from dataclasses import dataclass
from typing import Any

import diffprivlib
import diffprivlib.models
import numpy as np
import numpy.typing as npt
import pandas as pd
from diffprivlib.accountant import BudgetAccountant
from diffprivlib.utils import PrivacyLeakWarning
from diffprivlib.validation import check_bounds
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from dpkube.engine import documents
from dpkube.engine.errors import ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.engine.libraries.diffprivlib_fitting import PublicFacts, fitting_estimator, public_train_size
from dpkube.engine.libraries.diffprivlib_release import release_pipeline
from dpkube.models.cost import Cost
from dpkube.models.metadata import (
    BooleanColumn,
    FloatColumn,
    IntCategoricalColumn,
    IntColumn,
    Metadata,
    StrCategoricalColumn,
)
from dpkube.models.payloads import DiffPrivLibPayload, Library

LIBRARY = Library.DIFFPRIVLIB
INSTALLED_VERSION = diffprivlib.__version__
ACCEPTED_VERSIONS = ("0.6",)
"""diffprivlib_logger lines accepted: 0.6.x (Lomas 0.3 sends 0.6.4; class names are stable)."""

TYPE_PREFIX = "_dpl_type:"
ACCOUNTANT = "_dpl_instance:BudgetAccountant"
MAX_STEPS = 10
MAX_DEPTH = 8
MAX_LIST = 1_000

REQUIRED: dict[str, tuple[str, ...]] = {
    "DecisionTreeClassifier": ("epsilon", "bounds", "classes"),
    "GaussianNB": ("epsilon", "bounds"),
    "KMeans": ("epsilon", "bounds"),
    "LinearRegression": ("epsilon", "bounds_X", "bounds_y"),
    "LogisticRegression": ("epsilon", "data_norm"),
    "PCA": ("epsilon", "data_norm", "bounds"),
    "RandomForestClassifier": ("epsilon", "bounds", "classes"),
    "StandardScaler": ("epsilon", "bounds"),
}
"""The allowlisted classes of diffprivlib.models and the privacy parameters each must declare
(those whose absence makes diffprivlib guess from the data and raise a PrivacyLeakWarning)."""

LIMITS = {"n_estimators": 100, "max_depth": 16, "max_iter": 10_000, "n_clusters": 100}
"""Upper bounds on parameters that drive compute time."""
MAX_TREE_LEAVES = 2**16
"""Most leaves a tree or forest may have in all (diffprivlib builds every node of a full tree in Python)."""

IMPUTER_STRATEGIES = ("drop", "mean", "median", "most_frequent")


def _decode(value: Any, where: str, depth: int = 0) -> Any:
    """JSON parameter values: scalars, lists and `{"_tuple": true, "_items": [...]}` only."""
    if depth > MAX_DEPTH:
        raise PayloadRejected(f"{where} is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and value.startswith("_dpl_"):
            raise PayloadRejected(f"{where}: {value!r} is not allowed; only accountant may be {ACCOUNTANT!r}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadRejected(f"{where} must be a finite number")
        return value
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            raise PayloadRejected(f"{where} has more than {MAX_LIST} items")
        return [_decode(v, where, depth + 1) for v in value]
    if isinstance(value, dict) and value.get("_tuple") is True and set(value) == {"_tuple", "_items"}:
        return tuple(_decode(v, where, depth + 1) for v in _decode(value["_items"], where, depth + 1))
    raise PayloadRejected(f"{where} holds an unsupported value (objects other than _tuple)")


def _step_class(step: Any, index: int) -> type[Any]:
    kind = step.get("type") if isinstance(step, dict) else None
    name = kind.removeprefix(TYPE_PREFIX) if isinstance(kind, str) else None
    if not isinstance(kind, str) or not kind.startswith(TYPE_PREFIX) or name not in REQUIRED:
        raise PayloadRejected(
            f"pipeline step {index} has type {kind!r}; allowed: " + ", ".join(TYPE_PREFIX + n for n in REQUIRED)
        )
    cls: type[Any] = getattr(diffprivlib.models, name)
    return cls


def _step_params(cls: type[Any], raw: Any, index: int) -> dict[str, Any]:
    """Checked constructor arguments, with a fresh accountant whatever the request said."""
    if not isinstance(raw, dict):
        raise PayloadRejected(f"pipeline step {index} params must be an object")
    signature = inspect.signature(cls.__init__).parameters
    accepted = {n for n, p in signature.items() if n != "self" and p.kind is not p.VAR_KEYWORD}
    unknown = sorted(set(raw) - accepted)
    if unknown:
        raise PayloadRejected(
            f"{cls.__name__} does not take {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}"
        )
    missing = [p for p in REQUIRED[cls.__name__] if raw.get(p) is None]
    if missing:
        raise PayloadRejected(
            f"{cls.__name__} must set {', '.join(missing)} (otherwise diffprivlib would read them "
            "from the private data)"
        )
    params: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{cls.__name__}.{key}"
        if key in ("accountant", "random_state"):
            if key == "accountant" and value not in (None, ACCOUNTANT):
                raise PayloadRejected(f"{where} must be {ACCOUNTANT!r} or null")
            continue
        params[key] = _decode(value, where)
    epsilon = params["epsilon"]
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 < epsilon <= 1_000:
        raise PayloadRejected(f"{cls.__name__}.epsilon must be a number in (0, 1000]")
    for key, limit in LIMITS.items():
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or not 0 < value <= limit):
            raise PayloadRejected(f"{cls.__name__}.{key} must be an integer in [1, {limit}]")
    if raw.get("random_state") is not None:
        raise PayloadRejected(
            f"{cls.__name__}.random_state must be null: a chosen seed makes the noise replayable"
        )
    if params.get("n_jobs") not in (None, 1):
        raise PayloadRejected(f"{cls.__name__}.n_jobs must be null or 1")
    params["accountant"] = BudgetAccountant()
    return params


def _steps(payload: DiffPrivLibPayload) -> list[tuple[str, type[Any], dict[str, Any]]]:
    document = documents.parse(payload.diffprivlib_json, "diffprivlib_json")
    if not isinstance(document, dict) or document.get("module") != "diffprivlib":
        raise PayloadRejected('diffprivlib_json must be {"module": "diffprivlib", ...}')
    documents.check_version(document.get("version"), "diffprivlib_json", ACCEPTED_VERSIONS,
                            installed=f"diffprivlib {INSTALLED_VERSION}")
    pipeline = document.get("pipeline")
    if not isinstance(pipeline, list) or not 1 <= len(pipeline) <= MAX_STEPS:
        raise PayloadRejected(f"diffprivlib_json pipeline must list 1 to {MAX_STEPS} steps")
    steps, names = [], set()
    for index, step in enumerate(pipeline):
        cls = _step_class(step, index)
        name = step.get("name")
        if not isinstance(name, str) or not name or "__" in name or name in names:
            raise PayloadRejected(f"pipeline step {index} needs a unique name without '__'")
        names.add(name)
        steps.append((name, cls, _step_params(cls, step.get("params", {}), index)))
    return steps


CLASSIFIERS = ("DecisionTreeClassifier", "GaussianNB", "LogisticRegression", "RandomForestClassifier")
"""Final steps whose target must be one categorical column; `classes_` are its categories."""
REGRESSORS = ("LinearRegression",)
"""Final steps whose targets must be numeric columns, clipped to the request's `bounds_y`."""
TRANSFORMERS = ("StandardScaler", "PCA", "KMeans")
"""Steps that may come before another (they transform their input)."""
BOUNDED = {"bounds": "bounds", "bounds_X": "bounds_X"}
"""Parameters holding per-feature bounds of the step's input."""
NUMERIC_FEATURES = (IntColumn, FloatColumn, IntCategoricalColumn)
CATEGORICAL_TARGETS = (StrCategoricalColumn, IntCategoricalColumn, BooleanColumn)


@dataclass(frozen=True)
class Plan:
    """A request checked against the metadata: its steps and the public facts the fit may use."""

    steps: list[tuple[str, type[Any], dict[str, Any]]]
    facts: PublicFacts


def _check_columns(payload: DiffPrivLibPayload, metadata: Metadata) -> None:
    if payload.imputer_strategy not in IMPUTER_STRATEGIES:
        raise InvalidQuery(f"Imputation strategy {payload.imputer_strategy} not supported.")
    used = payload.feature_columns + (payload.target_columns or [])
    unknown = [c for c in used if c not in metadata.columns]
    if unknown:
        raise InvalidQuery(f"columns not in the dataset: {', '.join(unknown)}")
    both = sorted(set(payload.feature_columns) & set(payload.target_columns or []))
    if both or len(set(used)) != len(used):
        raise InvalidQuery(f"a column may be used once, as a feature or a target: {', '.join(both) or 'repeated'}")
    not_numeric = [c for c in payload.feature_columns if not isinstance(metadata.columns[c], NUMERIC_FEATURES)]
    if not_numeric:
        raise InvalidQuery(f"feature columns must be numeric (int or float): {', '.join(not_numeric)}")


def _categories(column: Any) -> list[Any]:
    return [False, True] if isinstance(column, BooleanColumn) else list(column.categories)


def _classes(
    final: str, params: dict[str, Any], payload: DiffPrivLibPayload, metadata: Metadata
) -> npt.NDArray[Any] | None:
    """The target's categories for a classifier (sorted), after the target rules of the final step."""
    targets = payload.target_columns or []
    if final in REGRESSORS:
        not_numeric = [c for c in targets if not isinstance(metadata.columns[c], IntColumn | FloatColumn)]
        if not targets or not_numeric:
            raise InvalidQuery(f"{final} needs numeric target columns (int or float, bounded by bounds_y)")
        return None
    if final not in CLASSIFIERS:
        return None
    column = metadata.columns[targets[0]] if len(targets) == 1 else None
    if not isinstance(column, CATEGORICAL_TARGETS):
        raise InvalidQuery(
            f"{final} needs exactly one target column, categorical with its categories in the metadata "
            "(its classes are those categories, never values read from the data)"
        )
    categories = _categories(column)
    if final == "LogisticRegression" and len(categories) < 2:
        raise InvalidQuery(f"LogisticRegression needs a target with at least 2 categories; {targets[0]} has 1")
    priors = params.get("priors")
    if priors is not None and (
        not isinstance(priors, list) or len(priors) != len(categories)
        or any(isinstance(p, bool) or not isinstance(p, int | float) or p < 0 for p in priors)
        or not math.isclose(sum(priors), 1.0)
    ):
        raise PayloadRejected(f"{final}.priors must list {len(categories)} non-negative numbers summing to 1, "
                              f"one per category of {targets[0]}")
    requested = params.get("classes")
    if requested is not None and (
        not isinstance(requested, list) or not requested or len(set(map(repr, requested))) != len(requested)
        or any(c not in categories or type(c) is not type(categories[0]) for c in requested)
    ):
        raise PayloadRejected(f"{final}.classes must list distinct categories of {targets[0]} from the metadata")
    return np.array(sorted(categories))


def _check_step(kind: str, params: dict[str, Any], width: int | None, n_targets: int, n_train: int) -> int | None:
    """Checks of one step against its input width (None once a noisy choice decides it); the output width."""
    for key in BOUNDED:
        if key in params and width is not None:
            _check_bounds(kind, key, params[key], width)
    if "bounds_y" in params:
        _check_bounds(kind, "bounds_y", params["bounds_y"], n_targets)
    for key in ("data_norm",):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise PayloadRejected(f"{kind}.{key} must be a positive number")
    if params.get("verbose") not in (None, 0, False):
        raise PayloadRejected(f"{kind}.verbose must be 0: a library's progress output is computed on the data")
    if kind in ("DecisionTreeClassifier", "RandomForestClassifier"):
        trees = params.get("n_estimators", 10) if kind == "RandomForestClassifier" else 1
        if trees * 2 ** params.get("max_depth", 5) > MAX_TREE_LEAVES:
            raise PayloadRejected(f"{kind}: n_estimators x 2^max_depth must not exceed {MAX_TREE_LEAVES} leaves")
    try:
        getattr(diffprivlib.models, kind)(**{k: v for k, v in params.items() if k != "accountant"})._validate_params()
    except (ValueError, TypeError) as e:
        raise PayloadRejected(f"{kind}: {e}") from None
    if kind == "KMeans":
        clusters: int = params.get("n_clusters", 8)
        if clusters > n_train:
            raise PayloadRejected(f"KMeans.n_clusters must not exceed the training rows ({n_train} by the metadata)")
        return clusters
    if kind == "PCA":
        components = params.get("n_components")
        if isinstance(components, int) and not isinstance(components, bool):
            if width is not None and not 1 <= components <= width:
                raise PayloadRejected(f"PCA.n_components must be in [1, {width}] (the step's input width)")
            return components
        if components is None:
            return width
        if isinstance(components, float) and 0 < components < 1:
            return None
        raise PayloadRejected("PCA.n_components must be an integer, a fraction in (0, 1) or null ('mle' reads "
                              "the training size)")
    return width


def _check_bounds(kind: str, key: str, bounds: Any, width: int) -> None:
    try:
        check_bounds(bounds, shape=width)
    except (ValueError, TypeError) as e:
        raise PayloadRejected(f"{kind}.{key}: {e} (the step's input has {width} columns)") from None


def _plan(payload: DiffPrivLibPayload, metadata: Metadata) -> Plan:
    """Every check that the request and the metadata decide, before any data is read."""
    _check_columns(payload, metadata)
    steps = _steps(payload)
    for index, (name, cls, _) in enumerate(steps[:-1]):
        if cls.__name__ not in TRANSFORMERS:
            raise PayloadRejected(
                f"pipeline step {index} ({name}) is a {cls.__name__}; only {', '.join(TRANSFORMERS)} may come "
                "before another step"
            )
    final, final_params = steps[-1][1].__name__, steps[-1][2]
    classes = _classes(final, final_params, payload, metadata)
    n_train = public_train_size(metadata.rows, payload.test_size)
    width: int | None = len(payload.feature_columns)
    for _, cls, params in steps:
        width = _check_step(cls.__name__, params, width, len(payload.target_columns or []), n_train)
    return Plan(steps, PublicFacts(classes=classes, n_train=n_train))


def cost(payload: DiffPrivLibPayload, metadata: Metadata) -> Cost:
    """The sum of the epsilons the steps declare (no step of diffprivlib.models spends delta)."""
    plan = _plan(payload, metadata)
    return Cost(sum(params["epsilon"] for _, _, params in plan.steps), 0.0)


def _public_fill(column: Any, strategy: str) -> Any:
    """A fill value from metadata alone: the middle of the bounds, else the first category."""
    if isinstance(column, IntColumn | FloatColumn) and strategy in ("mean", "median"):
        middle = (column.lower + column.upper) / 2
        return round(middle) if isinstance(column, IntColumn) else middle
    if isinstance(column, StrCategoricalColumn | IntCategoricalColumn):
        return column.categories[0]
    if isinstance(column, IntColumn | FloatColumn):
        return column.lower
    return None


def _impute(frame: pd.DataFrame, strategy: str, metadata: Metadata) -> pd.DataFrame:
    if strategy == "drop":
        return frame.dropna()
    fills = {c: _public_fill(metadata.columns[c], strategy) for c in frame.columns}
    return frame.fillna({c: v for c, v in fills.items() if v is not None}).dropna()


def _training_split(
    payload: DiffPrivLibPayload, frame: pd.DataFrame, plan: Plan, metadata: Metadata
) -> tuple[pd.DataFrame, npt.NDArray[Any] | None]:
    """Features and targets of the training split (no targets for an unsupervised final step); rows with a
    target outside the categories are left out."""
    targets = payload.target_columns or []
    data = _impute(frame[payload.feature_columns + targets], payload.imputer_strategy, metadata)
    if plan.facts.classes is not None:
        data = data[data[targets[0]].isin(_categories(metadata.columns[targets[0]]))]
        y: Any = np.array(data[targets[0]].tolist())
    elif plan.steps[-1][1].__name__ in REGRESSORS:
        y = data[targets].to_numpy(dtype=np.float64)
        y = y[:, 0] if len(targets) == 1 else y
    else:
        y = None
    split = train_test_split(
        data[payload.feature_columns], *([y] if y is not None else []),
        test_size=payload.test_size, random_state=payload.test_train_split_seed,
    )  # fmt: skip
    return split[0], (split[2] if y is not None else None)


def run(payload: DiffPrivLibPayload, metadata: Metadata, frame: pd.DataFrame, charge: Cost) -> Any:
    """`{"score": null, "model": base64(pickle(Pipeline))}`, the pipeline rebuilt by `diffprivlib_release`."""
    plan = _plan(payload, metadata)
    try:
        x_train, y_train = _training_split(payload, frame, plan, metadata)
    except ValueError as e:
        raise ExternalLibraryError(LIBRARY, f"Cannot split the data: {e}") from None
    estimators = [(name, fitting_estimator(cls.__name__, params, plan.facts)) for name, cls, params in plan.steps]
    pipeline = Pipeline(estimators)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        try:
            pipeline.fit(x_train, y_train)
        except PrivacyLeakWarning as w:
            raise ExternalLibraryError(
                LIBRARY,
                f"PrivacyLeakWarning: {w}. Lomas server cannot fit pipeline on data, PrivacyLeakWarning is a blocker.",
            ) from None
        except Exception as e:
            raise ExternalLibraryError(LIBRARY, f"Cannot fit pipeline on data because {e}") from None
    for (name, _, params), (_, estimator) in zip(plan.steps, pipeline.steps, strict=True):
        spent_epsilon, spent_delta = estimator.accountant.total()
        if spent_epsilon > params["epsilon"] * (1 + 1e-9) or spent_delta > 0:
            raise ExternalLibraryError(LIBRARY, f"step {name} spent more than it declared; nothing was released")
    released = release_pipeline(pipeline, plan.steps, plan.facts)
    return {"score": None, "model": base64.b64encode(pickle.dumps(released)).decode("ascii")}
