"""The battery's walker: each rule flags what it names, and plain DP outputs pass."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpkube_testing.leaks import findings, private_facts, recurring_findings

FRAME = pd.DataFrame({"mass": [3000.0 + 25 * i for i in range(40)], "kind": ["a", "b"] * 20})
PRIVATE = private_facts(FRAME.iloc[:-4], {30}, public_counts={36}, public_values={"kind": {"a", "b"}})


class Model:
    def __init__(self, **attributes: object) -> None:
        self.__dict__.update(attributes)


def test_values_copied_from_a_continuous_column_are_flagged() -> None:
    classes = np.array(sorted(FRAME["mass"].iloc[:20]))
    assert findings(Model(classes_=classes), PRIVATE) == [
        "release.classes_: 20 of the 36 raw distinct values of mass"
    ]


def test_per_row_arrays_are_flagged() -> None:
    assert findings(Model(labels_=[0] * 30), PRIVATE) == ["release.labels_: 30 items, a private table's length"]


def test_exact_counts_are_flagged_but_public_ones_are_not() -> None:
    assert findings(Model(n_samples_seen_=30, rows=36), PRIVATE) == ["release.n_samples_seen_: the exact row count 30"]


def test_generators_and_seeds_are_flagged() -> None:
    found = findings(Model(rng=np.random.RandomState(1), inner=Model(random_state=7)), PRIVATE)
    assert sorted(found) == [
        "release.inner.random_state: a seed (7) that replays the noise",
        "release.rng: a random generator whose state replays the noise",
    ]


def test_noisy_statistics_and_public_categories_pass() -> None:
    model = Model(mean_=np.array([3412.7, 0.51]), classes_=np.array(["a", "b"]), counts=np.array([14.0, 17.0]))
    assert findings(model, PRIVATE) == []


def test_a_finding_every_release_has_is_kept() -> None:
    def release() -> Model:
        return Model(counts=np.array([10.0, 20.0]))

    assert recurring_findings(release, PRIVATE) == ["release.counts: integral values summing to the exact row count 30"]


def test_a_noisy_sum_landing_on_a_row_count_once_is_not_a_finding() -> None:
    noisy = iter([np.array([10.0, 20.0]), np.array([12.0, 21.0])])

    def release() -> Model:
        return Model(counts=next(noisy))

    assert recurring_findings(release, PRIVATE) == []
