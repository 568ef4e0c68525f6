"""Experiment caps: their books are named and recognised by what they hold, and move with the ledger's rules."""

from __future__ import annotations

import re

import pytest

from dpkube.budget import ledger as L
from dpkube.k8s.caps import (
    CapKey,
    ExperimentBudgetExceeded,
    cap_key,
    cap_manifest,
    cap_name,
    cap_of,
    if_held,
    is_cap_of,
    is_newer_cap,
    within_cap,
)
from dpkube.models.cost import Cost
from dpkube.models.dpquery import DPQuerySpec

KEY = CapKey("team-a", "study", "Dr. Antartica", "PENGUIN")


def books(epsilon: float = 1.0, **changes: object) -> L.Ledger:
    return L.from_data({**cap_manifest("dpkube-system", KEY, Cost(epsilon, 1e-3))["data"], **changes})


def spec(**fields: object) -> DPQuerySpec:
    return DPQuerySpec.model_validate({"user": "Dr. Antartica", "dataset": "PENGUIN", "library": "smartnoise-sql",
                                       "smartnoiseSql": {"queryStr": "SELECT COUNT(*) FROM df", "epsilon": 0.1,
                                                         "delta": 1e-5}, **fields})


def test_a_cap_name_is_a_valid_configmap_name_for_any_user_name() -> None:
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", cap_name(KEY))
    assert len(cap_name(CapKey("ns", "e" * 63, "u" * 253, "d" * 253))) <= 63


def test_caps_of_another_experiment_user_or_namespace_have_other_names() -> None:
    others = [CapKey("team-b", "study", KEY.user, KEY.dataset), CapKey("team-a", "other", KEY.user, KEY.dataset),
              CapKey("team-a", "study", "Dr. Antartica2", KEY.dataset)]
    assert len({cap_name(KEY), *(cap_name(key) for key in others)}) == 4


def test_a_cap_is_recognised_by_its_label_and_data_not_its_name() -> None:
    manifest = cap_manifest("dpkube-system", KEY, Cost(1.0))
    assert is_cap_of(manifest, KEY)
    assert not is_cap_of(manifest, CapKey("team-b", "study", KEY.user, KEY.dataset))
    unlabelled = {**manifest, "metadata": {**manifest["metadata"], "labels": {}}}
    assert not is_cap_of(unlabelled, KEY)


def test_a_grant_label_does_not_make_a_configmap_a_cap() -> None:
    manifest = cap_manifest("dpkube-system", KEY, Cost(1.0))
    as_grant = {**manifest, "metadata": {**manifest["metadata"], "labels": {"dpkube.io/budget": "grant"}}}
    assert not is_cap_of(as_grant, KEY)


def test_a_cap_books_start_with_the_cap_and_nothing_spent() -> None:
    ledger = books(0.5)
    assert ledger.initial == Cost(0.5, 1e-3)
    assert ledger.spent == Cost() and ledger.reservations == {}


def test_a_query_beyond_the_cap_is_refused_as_experiment_budget_exceeded() -> None:
    full = L.reserve(books(0.25), "q1", Cost(0.2))
    with pytest.raises(ExperimentBudgetExceeded) as refused:
        within_cap(lambda ledger: L.reserve(ledger, "q2", Cost(0.1)))(full)
    assert refused.value.reason == "ExperimentBudgetExceeded"
    assert "Dr. Antartica" in str(refused.value) and "PENGUIN" in str(refused.value)


def test_a_query_within_the_cap_is_reserved_once_however_often_it_is_retried() -> None:
    reserve = within_cap(lambda ledger: L.reserve(ledger, "q1", Cost(0.2)))
    assert reserve(reserve(books())).reservations == {"q1": Cost(0.2)}


def test_a_charge_mirrored_on_books_that_never_held_the_query_moves_nothing() -> None:
    before = L.reserve(books(), "other", Cost(0.2))
    assert if_held("q1", lambda ledger: L.charge(ledger, "q1"))(before) == before


def test_a_charge_mirrored_on_books_that_hold_the_query_moves_it_to_spent_once() -> None:
    charge = if_held("q1", lambda ledger: L.charge(ledger, "q1"))
    after = charge(charge(L.reserve(books(), "q1", Cost(0.2))))
    assert after.spent == Cost(0.2) and after.reservations == {}


def test_a_query_names_its_cap_only_through_its_experiment() -> None:
    assert cap_key("team-a", spec()) is None
    assert cap_key("team-a", spec(experiment="study")) == KEY


def test_an_experiment_without_a_budget_sets_no_cap() -> None:
    assert cap_of({"spec": {"displayName": "study"}}) is None
    assert cap_of({"spec": {"budget": {"epsilon": 2.0, "delta": 1e-4}}}) == Cost(2.0, 1e-4)


def test_a_cap_from_a_newer_spec_replaces_the_books_cap() -> None:
    assert is_newer_cap(cap_manifest("dpkube-system", KEY, Cost(1.0), generation=2)["data"], 3)


def test_a_cap_from_an_older_or_the_same_spec_never_replaces_the_books_cap() -> None:
    data = cap_manifest("dpkube-system", KEY, Cost(1.0), generation=3)["data"]
    assert not is_newer_cap(data, 2) and not is_newer_cap(data, 3)
