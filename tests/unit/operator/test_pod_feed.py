"""The operator's query-pod feed: which pod events move their query on, and which pods it tells went."""

from __future__ import annotations

from typing import Any, cast

from dpkube.k8s.client import KubeClient
from dpkube.k8s.pods import QUERY_UID_LABEL
from dpkube.operator.pod_feed import PodFeed
from dpkube.operator.reconciler import Reconciler


class Steps:
    """The reconciler as the feed sees it: each pod it was handed, as (query name, pod name, phase or "gone")."""

    def __init__(self) -> None:
        self.stepped: list[tuple[str, str, str]] = []

    def pod_changed_soon(self, namespace: str, name: str, uid: str, pod: dict[str, Any], gone: bool) -> None:
        self.stepped.append((name, pod["metadata"]["name"], "gone" if gone else pod["status"]["phase"]))


def pod(name: str, phase: str = "Pending", namespace: str = "a", labelled: bool = True,
        owner: str | None = "q") -> dict[str, Any]:
    owners = [{"kind": "DPQuery", "name": owner, "uid": f"uid-{owner}"}] if owner else []
    return {"metadata": {"uid": f"pod-{name}", "name": name, "namespace": namespace, "ownerReferences": owners,
                         "labels": {QUERY_UID_LABEL: f"uid-{owner}"} if labelled else {}},
            "status": {"phase": phase}}


def feed() -> tuple[PodFeed, Steps]:
    steps = Steps()
    return PodFeed(cast(KubeClient, None), ["a", "b"], cast(Reconciler, steps)), steps


def test_a_pod_that_runs_or_ended_moves_its_query_on_with_the_pod_it_carried() -> None:
    pods, steps = feed()
    pods.changed("MODIFIED", pod("p1", "Running"))
    pods.changed("MODIFIED", pod("p1", "Succeeded"))
    assert steps.stepped == [("q", "p1", "Running"), ("q", "p1", "Succeeded")]


def test_a_pending_pod_moves_nothing() -> None:
    pods, steps = feed()
    pods.changed("ADDED", pod("p1"))
    assert steps.stepped == []


def test_a_pod_no_dpquery_owns_is_ignored() -> None:
    pods, steps = feed()
    pods.changed("MODIFIED", pod("p1", "Running", owner=None))
    assert steps.stepped == [] and pods.known == {}


def test_a_deleted_pod_tells_its_query_it_went() -> None:
    pods, steps = feed()
    pods.changed("ADDED", pod("p1"))
    pods.changed("DELETED", pod("p1"))
    assert steps.stepped == [("q", "p1", "gone")]


def test_a_pod_that_lost_its_label_left_the_selection_and_is_not_told_gone() -> None:
    pods, steps = feed()
    pods.changed("ADDED", pod("p1"))
    pods.changed("DELETED", pod("p1", labelled=False))
    assert steps.stepped == [] and pods.known == {}


def test_a_relisting_tells_the_queries_whose_pods_went_meanwhile_and_passes_the_rest_on() -> None:
    pods, steps = feed()
    pods.listed("a", [pod("p1", owner="q1"), pod("p2", owner="q2")])
    pods.listed("b", [pod("p3", namespace="b", owner="q3")])
    pods.listed("a", [pod("p2", "Failed", owner="q2")])
    assert steps.stepped == [("q1", "p1", "gone"), ("q2", "p2", "Failed")]
    assert set(pods.known) == {"pod-p2", "pod-p3"}
