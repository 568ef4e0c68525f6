"""diffprivlib: a scikit-learn pipeline of diffprivlib steps, priced by the epsilons it declares.

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
from typing import Any

import diffprivlib
import diffprivlib.models
import pandas as pd
from diffprivlib.accountant import BudgetAccountant
from diffprivlib.utils import PrivacyLeakWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from dpkube.engine import documents
from dpkube.engine.cost import Cost
from dpkube.engine.errors import ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.models.metadata import (
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

LIMITS = {"n_estimators": 100, "max_depth": 20, "max_iter": 10_000, "n_clusters": 100}
"""Upper bounds on parameters that drive compute time."""

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


def _step_class(step: Any, index: int) -> type:
    kind = step.get("type") if isinstance(step, dict) else None
    name = kind.removeprefix(TYPE_PREFIX) if isinstance(kind, str) else None
    if not isinstance(kind, str) or not kind.startswith(TYPE_PREFIX) or name not in REQUIRED:
        raise PayloadRejected(
            f"pipeline step {index} has type {kind!r}; allowed: " + ", ".join(TYPE_PREFIX + n for n in REQUIRED)
        )
    return getattr(diffprivlib.models, name)


def _step_params(cls: type, raw: Any, index: int) -> dict[str, Any]:
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
        if key == "accountant":
            if value not in (None, ACCOUNTANT):
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
    if params.get("n_jobs") not in (None, 1):
        raise PayloadRejected(f"{cls.__name__}.n_jobs must be null or 1")
    params["accountant"] = BudgetAccountant()
    return params


def _steps(payload: DiffPrivLibPayload) -> list[tuple[str, type, dict[str, Any]]]:
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


def _check_columns(payload: DiffPrivLibPayload, metadata: Metadata) -> None:
    if payload.imputer_strategy not in IMPUTER_STRATEGIES:
        raise InvalidQuery(f"Imputation strategy {payload.imputer_strategy} not supported.")
    used = payload.feature_columns + (payload.target_columns or [])
    unknown = [c for c in used if c not in metadata.columns]
    if unknown:
        raise InvalidQuery(f"columns not in the dataset: {', '.join(unknown)}")


def cost(payload: DiffPrivLibPayload, metadata: Metadata) -> Cost:
    """The sum of the epsilons the steps declare (no step of diffprivlib.models spends delta)."""
    _check_columns(payload, metadata)
    return Cost(sum(params["epsilon"] for _, _, params in _steps(payload)), 0.0)


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


def run(payload: DiffPrivLibPayload, metadata: Metadata, frame: pd.DataFrame, charge: Cost) -> Any:
    """`{"score": null, "model": base64(pickle(fitted Pipeline))}` (see the module docstring)."""
    steps = _steps(payload)
    targets = payload.target_columns or []
    data = _impute(frame[payload.feature_columns + targets], payload.imputer_strategy, metadata)
    x = data[payload.feature_columns]
    y = data[targets[0]].to_numpy() if len(targets) == 1 else (data[targets] if targets else None)
    split = train_test_split(
        x, *([y] if y is not None else []),
        test_size=payload.test_size, random_state=payload.test_train_split_seed,
    )  # fmt: skip
    x_train, y_train = split[0], (split[2] if y is not None else None)
    pipeline = Pipeline([(name, cls(**params)) for name, cls, params in steps])
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
    for (name, _, params), (_, estimator) in zip(steps, pipeline.steps, strict=True):
        spent_epsilon, spent_delta = estimator.accountant.total()
        if spent_epsilon > params["epsilon"] * (1 + 1e-9) or spent_delta > 0:
            raise ExternalLibraryError(LIBRARY, f"step {name} spent more than it declared; nothing was released")
    model = base64.b64encode(pickle.dumps(pipeline)).decode("ascii")
    return {"score": None, "model": model}
