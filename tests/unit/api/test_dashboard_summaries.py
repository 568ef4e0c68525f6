"""What the dashboard's pages show, from DPQueries, grant ConfigMaps, Experiments and Events: a user's own
budgets, spend, queries and jobs only; an admin's grants by dataset, experiments by phase, newest Events."""

from __future__ import annotations

from typing import Any

from dpkube.api.services.dashboard import (
    Dashboard,
    budget_lines,
    cap_lines,
    dashboard_entry,
    experiment_line,
    grants_by_dataset,
    recent_events,
    spend_over_time,
    user_view,
)
from dpkube.api.services.feed import query_feed
from dpkube.budget import ledger as L
from dpkube.k8s.budgets import grant_manifest
from dpkube.k8s.caps import CapKey, cap_manifest
from dpkube.k8s.informer import Informer
from dpkube.models.cost import Cost


def dpquery(name: str, user: str = "alice", dataset: str = "PENGUIN", *, phase: str = "Succeeded",
            spent: float = 0.0, ended: str | None = None, submitted: str = "2026-01-01T00:00:00Z",
            position: int | None = None, dioptra: bool = False, version: int = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "cost": {"epsilon": 0.5, "delta": 0.0}}
    if spent:
        status["spent"] = {"epsilon": spent, "delta": 1e-5}
    if ended:
        status["completionTime"] = ended
    if position is not None:
        status["queuePosition"] = position
    labels = {"dpkube.io/origin": "dioptra"} if dioptra else {}
    return {"metadata": {"name": name, "resourceVersion": str(version), "creationTimestamp": submitted,
                         "labels": labels},
            "spec": {"user": user, "dataset": dataset, "library": "smartnoise_sql", "mode": "query"},
            "status": status}


def grant(user: str, dataset: str, epsilon: float, spent: float = 0.0) -> dict[str, Any]:
    item = grant_manifest("dpkube-system", user, dataset, epsilon, 0.001)
    item["data"]["spentEpsilon"] = repr(spent)
    return item


def entries(*queries: dict[str, Any]) -> list:
    return [dashboard_entry(q) for q in queries]


def test_an_entry_keeps_phase_cost_spend_and_end() -> None:
    entry = dashboard_entry(dpquery("q", spent=0.25, ended="2026-01-01T00:01:00Z"))
    assert entry is not None
    assert (entry.phase, entry.cost_epsilon, entry.spent_epsilon, entry.ended) == ("Succeeded", 0.5, 0.25,
                                                                                   1767225660.0)


def test_only_a_pending_query_has_a_queue_position() -> None:
    assert dashboard_entry(dpquery("q", phase="Pending", position=3)).queue_position == 3  # type: ignore[union-attr]
    assert dashboard_entry(dpquery("q", phase="Running", position=3)).queue_position is None  # type: ignore[union-attr]


def test_a_dioptra_job_is_entered_with_its_dioptra_status() -> None:
    entry = dashboard_entry(dpquery("dioptra-1234", phase="Running", dioptra=True))
    assert (entry.job_status, entry.job_id) == ("started", "1234")  # type: ignore[union-attr]


def test_an_unreadable_query_has_no_entry() -> None:
    broken = dpquery("q")
    del broken["spec"]["user"]
    assert dashboard_entry(broken) is None


def test_a_users_view_holds_their_own_queries_and_grants_only() -> None:
    view = user_view("alice", [grant("alice", "PENGUIN", 10), grant("bob", "PENGUIN", 5)],
                     entries(dpquery("a1"), dpquery("b1", user="bob"), dpquery("a2", dioptra=True)))
    assert ([q.name for q in view.queries], [j.name for j in view.jobs], [b.user for b in view.budgets]) \
        == (["a1"], ["a2"], ["alice"])


def test_queries_are_listed_newest_first_up_to_the_limit_with_their_total() -> None:
    view = user_view("alice", [], entries(*(dpquery(f"q{i}", submitted=f"2026-01-01T00:00:0{i}Z")
                                           for i in range(5))), limit=2)
    assert ([q.name for q in view.queries], view.query_count) == (["q4", "q3"], 5)


def test_spend_over_time_is_cumulative_per_dataset_in_order_of_charge() -> None:
    spend = spend_over_time(entries(
        dpquery("late", spent=0.5, ended="2026-01-01T00:02:00Z"),
        dpquery("early", spent=0.25, ended="2026-01-01T00:01:00Z"),
        dpquery("free", phase="Rejected"),
        dpquery("other", dataset="IRIS", spent=1.0, ended="2026-01-01T00:03:00Z")))
    assert spend == {"IRIS": [(1767225780.0, 1.0)], "PENGUIN": [(1767225660.0, 0.25), (1767225720.0, 0.75)]}


def test_a_budget_line_reports_remaining_as_initial_minus_spent() -> None:
    [line] = budget_lines([grant("alice", "PENGUIN", 10, spent=2.5)])
    assert (line.initial, line.spent, line.remaining.epsilon) == (Cost(10, 0.001), Cost(2.5, 0), 7.5)


def test_unlabelled_and_unreadable_grants_are_left_out() -> None:
    unlabelled = grant("alice", "PENGUIN", 1)
    unlabelled["metadata"]["labels"] = {}
    unreadable = grant("alice", "IRIS", 1)
    unreadable["data"]["initialEpsilon"] = "lots"
    assert budget_lines([unlabelled, unreadable]) == []


def test_grants_are_grouped_by_dataset_with_their_users() -> None:
    grouped = grants_by_dataset(budget_lines([grant("bob", "PENGUIN", 1), grant("alice", "PENGUIN", 1),
                                              grant("alice", "IRIS", 1)]))
    assert {d: [line.user for line in lines] for d, lines in grouped.items()} \
        == {"IRIS": ["alice"], "PENGUIN": ["alice", "bob"]}


def test_an_experiment_shows_its_counts_by_phase() -> None:
    line = experiment_line({"metadata": {"name": "exp-a"}, "spec": {"displayName": "a"},
                            "status": {"total": 3, "queries": {"succeeded": 2, "timedOut": 1}}})
    assert (line.name, line.total, line.phases["Succeeded"], line.phases["TimedOut"], line.phases["Pending"]) \
        == ("a", 3, 2, 1, 0)


def test_an_experiment_with_a_cap_shows_each_users_spend_against_it() -> None:
    key = CapKey("dpkube", "exp-a", "alice", "PENGUIN")
    books = cap_manifest("dpkube-system", key, Cost(1.0, 1e-4))
    books["data"].update(L.to_data(L.charge(L.reserve(L.from_data(books["data"]), "q1", Cost(0.25, 0)), "q1")))
    other = cap_manifest("dpkube-system", CapKey("elsewhere", "exp-a", "bob", "PENGUIN"), Cost(1.0, 1e-4))
    line = experiment_line({"metadata": {"name": "exp-a"}, "spec": {"budget": {"epsilon": 1.0, "delta": 1e-4}}},
                           cap_lines([books, other], "dpkube"))
    assert line.cap == Cost(1.0, 1e-4)
    assert [(s.user, s.spent.epsilon, s.remaining.epsilon) for s in line.spend] == [("alice", 0.25, 0.75)]


def test_an_experiment_without_a_cap_shows_none() -> None:
    line = experiment_line({"metadata": {"name": "exp-b"}, "spec": {}}, {})
    assert (line.cap, line.spend) == (None, [])


def test_events_are_listed_newest_first_up_to_the_limit() -> None:
    events = [{"metadata": {"name": f"e{i}"}, "lastTimestamp": f"2026-01-01T00:00:0{i}Z", "reason": f"R{i}",
               "involvedObject": {"kind": "DPQuery", "name": "q"}} for i in range(4)]
    assert [e.reason for e in recent_events(events, limit=2)] == ["R3", "R2"]


async def test_a_users_view_is_read_from_the_synced_feed_without_asking_the_api_server() -> None:
    feed = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    for item in (dpquery("a1", spent=0.1), dpquery("b1", user="bob")):
        feed.put(item)
    feed.synced_at = 1.0
    grants = Informer(None, "/api/v1/namespaces/dpkube-system/configmaps")  # type: ignore[arg-type]
    grants.put(grant("alice", "PENGUIN", 10, spent=0.1))
    grants.synced_at = 1.0
    dashboard = Dashboard(None, "dpkube", "dpkube-system", None, feed=feed, grants=grants)  # type: ignore[arg-type]
    view = await dashboard.user_view("alice")
    assert ([q.name for q in view.queries], [b.dataset for b in view.budgets]) == (["a1"], ["PENGUIN"])
