"""What a fitted diffprivlib pipeline may carry out of the engine: a per-class allowlist of fitted
attributes, copied into a fresh object of the stock class.

The fitted object is never pickled as it is: it holds per-row labels (KMeans `labels_`), exact
counts (`n_samples_seen_`, `n_samples_`, `inertia_`, LBFGS iterations), the seeds of forest trees
(which replay their noise) and whatever a library version adds later. The rebuilt object holds
the constructor arguments of the request (public), a fresh accountant recording the declared
epsilon, and only the attributes listed below, each a DP output, a public fact or derived from
both. Anything that is neither numbers, text nor a scikit-learn Tree stops the release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import diffprivlib.models
import numpy as np
import numpy.typing as npt
from diffprivlib.accountant import BudgetAccountant
from sklearn.pipeline import Pipeline
from sklearn.tree._tree import Tree

from dpkube.engine.libraries.diffprivlib_fitting import PublicFacts

Derive = Callable[[Any, PublicFacts], Any]

SHAPE = {
    "n_features_in_": "the width of the step's input (public: feature columns or earlier steps' output)",
    "feature_names_in_": "the payload's feature columns (first step only)",
}


def _explained_variance(fitted: Any, facts: PublicFacts) -> npt.NDArray[np.float64]:
    """Noisy eigenvalues over the public training size (diffprivlib divides by the exact one)."""
    return np.asarray(fitted.singular_values_, dtype=np.float64) ** 2 / max(facts.n_train - 1, 1)


@dataclass(frozen=True)
class Allowlist:
    """The fitted attributes one class may release, each with the reason it may."""

    copied: dict[str, str]
    derived: dict[str, tuple[Derive, str]] = field(default_factory=dict)


ALLOWLISTS: dict[str, Allowlist] = {
    "StandardScaler": Allowlist({
        **SHAPE,
        "mean_": "noisy means (diffprivlib nanmean)",
        "var_": "noisy variances (diffprivlib nanvar)",
        "scale_": "square roots of the noisy variances",
    }),  # n_samples_seen_ is the exact row count: dropped
    "PCA": Allowlist(
        {
            **SHAPE,
            "mean_": "noisy means, or zeros when centered",
            "components_": "eigenvectors of the noisy covariance",
            "n_components_": "the requested count, or one chosen from noisy variance ratios",
            "explained_variance_ratio_": "ratios of noisy eigenvalues (the training size cancels)",
            "singular_values_": "square roots of the noisy eigenvalues",
        },
        {"explained_variance_": (_explained_variance, "noisy eigenvalues over the public training size")},
    ),  # n_samples_ exact; noise_variance_ averages eigenvalues that are not released: dropped
    "KMeans": Allowlist({
        **SHAPE,
        "cluster_centers_": "noisy sums over noisy counts",
        "n_iter_": "from the public row count (fitting.KMeans)",
        "bounds_processed": "the request's bounds, rearranged",
        "_n_threads": "scikit-learn's prediction thread count (1)",
    }),  # labels_ is one entry per training row, inertia_ an exact sum: dropped
    "LinearRegression": Allowlist({
        **SHAPE,
        "coef_": "minimiser of the noisy objective",
        "intercept_": "from noisy means of X and y",
    }),  # _obj_coefs (the noisy objective) is not needed to predict: dropped
    "LogisticRegression": Allowlist({
        **SHAPE,
        "classes_": "the target's categories in the metadata (fitting.LogisticRegression)",
        "coef_": "minimiser of the objective-perturbed loss",
        "intercept_": "minimiser of the objective-perturbed loss",
    }),  # n_iter_ counts LBFGS steps on the private data: dropped
    "GaussianNB": Allowlist({
        **SHAPE,
        "classes_": "the target's categories in the metadata (fitting.GaussianNB)",
        "theta_": "noisy per-class means",
        "var_": "noisy per-class variances plus var_smoothing",
        "epsilon_": "var_smoothing (a parameter)",
        "class_count_": "noisy counts, not forced to the exact total (fitting.GaussianNB)",
        "class_prior_": "the noisy counts normalised, or the request's priors",
    }),
    "DecisionTreeClassifier": Allowlist({
        **SHAPE,
        "classes_": "the request's classes, a subset of the metadata's categories",
        "n_classes_": "their number",
        "n_outputs_": "1",
        "tree_": "random splits drawn before reading data; leaf labels by permute-and-flip; node counts zeroed",
    }),  # random_state of trees in a forest replays their noise: reset to None
    "RandomForestClassifier": Allowlist({
        **SHAPE,
        "classes_": "the request's classes, a subset of the metadata's categories",
        "n_classes_": "their number",
        "n_outputs_": "1",
        "estimators_": "each tree rebuilt by the DecisionTreeClassifier allowlist",
        "estimator_": "the unfitted tree template",
    }),
}
"""Per diffprivlib class, the fitted attributes a release may carry and why each may."""


def _plain(value: Any) -> Any:
    """A copy made of plain numbers, text and arrays of them; anything else is a programming error."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype == object and not all(isinstance(v, str | int | float | bool) for v in value.flat):
            raise TypeError("an object array holding non-scalar values cannot be released")
        return value.copy()
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    raise TypeError(f"a {type(value).__name__} cannot be released as a fitted attribute")


def _tree(fitted: Tree) -> Tree:
    """The same splits and leaf values in a fresh Tree, node sample counts and impurities zeroed."""
    state = fitted.__getstate__()
    nodes = state["nodes"].copy()
    for name in ("impurity", "n_node_samples", "weighted_n_node_samples"):
        nodes[name] = 0
    clean = Tree(fitted.n_features, np.asarray(fitted.n_classes, dtype=np.intp), fitted.n_outputs)
    clean.__setstate__({
        "max_depth": int(state["max_depth"]), "node_count": int(state["node_count"]),
        "nodes": nodes, "values": np.array(state["values"], dtype=np.float64),
    })  # fmt: skip
    return clean


def _accountant(epsilon: float) -> BudgetAccountant:
    """A fresh accountant that records exactly the declared spend."""
    accountant = BudgetAccountant()
    if epsilon:
        accountant.spend(epsilon, 0)
    return accountant


def _attribute(name: str, kind: str, fitted: Any, params: dict[str, Any], facts: PublicFacts) -> Any:
    value = getattr(fitted, name)
    if name == "tree_":
        return _tree(value)
    if name == "estimators_":
        tree_params: dict[str, Any] = {k: params[k] for k in ("epsilon", "bounds", "classes") if k in params}
        tree_params["max_depth"] = params.get("max_depth", 5)
        return [release_estimator("DecisionTreeClassifier", tree, tree_params, facts, spent=0.0) for tree in value]
    if name == "estimator_":
        return diffprivlib.models.DecisionTreeClassifier(accountant=_accountant(0.0))
    return _plain(value)


def release_estimator(kind: str, fitted: Any, params: dict[str, Any], facts: PublicFacts,
                      spent: float | None = None) -> Any:
    """A fresh stock `kind` built from the request's `params` and the allowlisted attributes of `fitted`."""
    allowlist = ALLOWLISTS[kind]
    constructor = {k: v for k, v in params.items() if k not in ("accountant", "random_state")}
    epsilon = params["epsilon"] if spent is None else spent
    clean = getattr(diffprivlib.models, kind)(**constructor, accountant=_accountant(epsilon))
    for name in allowlist.copied:
        if hasattr(fitted, name):
            setattr(clean, name, _attribute(name, kind, fitted, params, facts))
    for name, (derive, _) in allowlist.derived.items():
        setattr(clean, name, derive(fitted, facts))
    return clean


def release_pipeline(
    fitted: Pipeline, steps: list[tuple[str, type[Any], dict[str, Any]]], facts: PublicFacts
) -> Pipeline:
    """The pipeline as released: each step rebuilt by its class's allowlist."""
    return Pipeline([
        (name, release_estimator(cls.__name__, estimator, params, facts))
        for (name, cls, params), (_, estimator) in zip(steps, fitted.steps, strict=True)
    ])  # fmt: skip
