"""diffprivlib estimators fitted over public facts: classes from the metadata, sizes from its row count.

Stock diffprivlib reads three things from the private rows that its noise does not cover: the set
of classes present (GaussianNB, LogisticRegression: `np.unique(y)`), the exact training size
(GaussianNB forces its noisy class counts to sum to it; KMeans derives its iteration count from
it) and, through both, the shape of the fitted model. The subclasses here replace those reads by
public facts and otherwise call diffprivlib's own mechanisms with the same epsilon split. They are
used for fitting only: what is released is rebuilt into stock diffprivlib classes
(`diffprivlib_release`), so a client never needs dpkube to unpickle a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import diffprivlib.models
import numpy as np
import numpy.typing as npt
from diffprivlib.mechanisms import GeometricTruncated
from diffprivlib.models.logistic_regression import _logistic_regression_path
from diffprivlib.utils import check_random_state


@dataclass(frozen=True)
class PublicFacts:
    """What a fit may use besides the rows, all derived from the request and the metadata."""

    classes: npt.NDArray[Any] | None
    """The target's categories, sorted (None without a categorical target)."""
    n_train: int
    """The training split's size for a table of the metadata's row count."""

    def target_classes(self) -> npt.NDArray[Any]:
        """The classes a classifier is fitted for; only a categorical target has them."""
        if self.classes is None:
            raise ValueError("a classifier needs the categories of a categorical target")
        return self.classes


def public_train_size(rows: int, test_size: float) -> int:
    """scikit-learn's train size (`n - ceil(test_size * n)`) for the metadata's row count."""
    return max(rows - math.ceil(test_size * rows), 1)


class GaussianNB(diffprivlib.models.GaussianNB):
    """GaussianNB whose classes are the metadata's: every class gets noisy counts, means and
    variances whether or not it occurs, and the noisy counts are not forced to the exact total."""

    facts: PublicFacts
    bounds: tuple[Any, Any] | None
    """diffprivlib's parameter: (lower, upper), each a number or one per feature; arrays once checked."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> GaussianNB:
        self._validate_params()
        self.accountant.check(self.epsilon, 0)
        random_state = check_random_state(self.random_state)
        X, y = self._validate_data(X, y)
        self.bounds = self._check_bounds(self.bounds, shape=X.shape[1])
        X = self._clip_to_bounds(X, self.bounds)
        classes = self.facts.target_classes()
        counter = GeometricTruncated(
            epsilon=self.epsilon / 3, sensitivity=1, lower=1, upper=self.facts.n_train, random_state=random_state
        )
        counts = np.array([counter.randomise(int(np.sum(y == c))) for c in classes], dtype=np.float64)
        zeros = np.zeros(X.shape[1])
        moments = [
            self._update_mean_variance(0, zeros, zeros, X[y == c], random_state=random_state, n_noisy=counts[i])
            for i, c in enumerate(classes)
        ]
        self.classes_ = classes
        self.epsilon_ = self.var_smoothing
        self.theta_ = np.array([mean for mean, _ in moments])
        self.var_ = np.array([var for _, var in moments]) + self.epsilon_
        self.class_count_ = counts
        priors = counts / counts.sum() if self.priors is None else np.asarray(self.priors, dtype=np.float64)
        self.class_prior_ = priors
        self.accountant.spend(self.epsilon, 0)
        return self


class LogisticRegression(diffprivlib.models.LogisticRegression):
    """LogisticRegression with one-vs-rest models for the metadata's classes, present or not
    (stock diffprivlib fits one per class found in the data and fails on a single class)."""

    facts: PublicFacts

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LogisticRegression:
        self._validate_params()
        self.accountant.check(self.epsilon, 0)
        random_state = check_random_state(self.random_state)
        X, y = self._validate_data(X, y, accept_sparse=False, dtype=float, order="C")
        X = self._clip_to_norm(X, self.data_norm)
        classes = self.facts.target_classes()
        positives = classes[1:] if len(classes) == 2 else classes
        paths = [
            _logistic_regression_path(
                X, y, epsilon=self.epsilon / len(positives), data_norm=self.data_norm, pos_class=positive,
                Cs=[self.C], fit_intercept=self.fit_intercept, max_iter=self.max_iter, tol=self.tol,
                verbose=self.verbose, coef=None, random_state=random_state, check_input=False,
            )[0]
            for positive in positives
        ]  # fmt: skip
        coef = np.asarray(paths).reshape(len(positives), X.shape[1] + int(self.fit_intercept))
        self.classes_ = classes
        if self.fit_intercept:
            self.coef_, self.intercept_ = coef[:, :-1], coef[:, -1]
        else:
            self.coef_, self.intercept_ = coef, np.zeros(len(positives))
        self.accountant.spend(self.epsilon, 0)
        return self


class KMeans(diffprivlib.models.KMeans):
    """KMeans whose number of iterations (and so its epsilon split) follows the public row count."""

    facts: PublicFacts

    def _calc_iters(self, n_dims: int, n_samples: int, rho: float = 0.225) -> int:
        return int(super()._calc_iters(n_dims, self.facts.n_train, rho))


FITTING: dict[str, type[GaussianNB | LogisticRegression | KMeans]] = {
    "GaussianNB": GaussianNB, "LogisticRegression": LogisticRegression, "KMeans": KMeans,
}
"""Classes fitted through a subclass; the others are fitted by diffprivlib's own class."""


def fitting_estimator(name: str, params: dict[str, Any], facts: PublicFacts) -> Any:
    """An unfitted estimator of diffprivlib class `name` that reads only public facts besides the rows."""
    cls = FITTING.get(name)
    if cls is None:
        return getattr(diffprivlib.models, name)(**params)
    estimator = cls(**params)
    estimator.facts = facts
    return estimator
