"""What the facade's one view of DPQueries keeps: the user of an unfinished query, the archive entry of a query
that succeeded in query mode, the dashboard entry of every query, each filed for its reader."""

from __future__ import annotations

import json
from typing import Any

from dpkube.api.services.dashboard import DASHBOARD_INDEX
from dpkube.api.services.feed import query_feed
from dpkube.api.services.history import HISTORY_INDEX, archived
from dpkube.api.services.queries import Queries
from dpkube.api.services.quotas import IN_FLIGHT_INDEX
from dpkube.api.wire import DUMMY_BODIES, QUERY_BODIES
from dpkube.models import examples
from dpkube.models.dpquery import Mode
from dpkube.models.payloads import Library

SQL = Library.SMARTNOISE_SQL
RESULT = {"columns": ["NB_ROW"], "data": [[346]]}
SUCCEEDED = {"phase": "Succeeded", "spent": {"epsilon": 0.1, "delta": 1.5e-5}, "result": RESULT,
             "conditions": [{"type": "Complete", "status": "True", "reason": "Succeeded", "message": "x" * 500}]}


def query(name: str = "q1", user: str = "alice", dataset: str = "PENGUIN", version: int = 1,
          status: dict[str, Any] | None = None, mode: Mode = Mode.QUERY) -> dict[str, Any]:
    """A DPQuery as the facade creates it, as the API server hands it over."""
    maker = Queries(client=None, namespace="dpkube", datasets=None, budgets=None, wait_seconds=1)  # type: ignore[arg-type]
    bodies, extra = (DUMMY_BODIES, examples.DUMMY) if mode == Mode.DUMMY else (QUERY_BODIES, {})
    body = bodies[SQL].model_validate({**examples.SMARTNOISE_SQL_QUERY, **extra, "dataset_name": dataset})
    manifest = maker.manifest(user, SQL, mode, body)
    manifest["metadata"].update(name=name, resourceVersion=str(version), creationTimestamp="2026-01-01T00:00:00Z",
                                managedFields=[{"manager": "dpkube-operator", "fieldsV1": {"f:status": {}}}])
    return {**manifest, "status": status or {}}


def test_a_succeeded_query_is_kept_as_its_archive_entry_alone() -> None:
    kept = archived(query(status=SUCCEEDED))
    assert kept is not None
    assert set(kept) == {"metadata", "archive"}
    assert kept["metadata"] == {"name": "q1", "resourceVersion": "1"}
    entry = kept["archive"]
    assert (entry.user, entry.dataset, entry.library) == ("alice", "PENGUIN", SQL)
    assert json.loads(entry.client_input) == examples.SMARTNOISE_SQL_QUERY
    assert json.loads(entry.result) == RESULT
    assert (entry.spent_epsilon, entry.spent_delta) == (0.1, 1.5e-5)


def test_a_result_kept_in_configmaps_is_kept_as_its_reference() -> None:
    ref = {"configMap": "dpq-1-result", "key": "result.json", "chunks": 2}
    entry = archived(query(status={**SUCCEEDED, "result": None, "resultRef": ref}))["archive"]  # type: ignore[index]
    assert (entry.result, entry.result_ref) == (None, ref)


def test_failed_refused_and_dummy_queries_are_not_archived() -> None:
    assert archived(query(status={"phase": "Failed"})) is None
    assert archived(query(status={"phase": "Rejected"})) is None
    assert archived(query(status=SUCCEEDED, mode=Mode.DUMMY)) is None


def test_a_query_sent_with_kubectl_is_archived_with_a_body_rebuilt_from_its_spec() -> None:
    sent = query(status=SUCCEEDED)
    del sent["metadata"]["annotations"]
    entry = archived(sent)["archive"]  # type: ignore[index]
    assert json.loads(entry.client_input)["query_str"] == examples.SMARTNOISE_SQL_QUERY["query_str"]
    assert entry.timestamp == 1767225600.0


def test_a_query_counts_as_in_flight_until_it_succeeds_then_is_in_its_owners_history() -> None:
    view = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    view.put(query(version=1, status={"phase": "Running"}))
    assert (list(view.indexed(IN_FLIGHT_INDEX, "alice")), dict(view.indexed(HISTORY_INDEX, ("alice", "PENGUIN")))) \
        == (["q1"], {})
    view.put(query(version=2, status=SUCCEEDED))
    assert (dict(view.indexed(IN_FLIGHT_INDEX, "alice")), list(view.indexed(HISTORY_INDEX, ("alice", "PENGUIN")))) \
        == ({}, ["q1"])


def test_history_is_filed_by_user_and_dataset() -> None:
    view = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    for name, user, dataset in (("a", "alice", "PENGUIN"), ("b", "bob", "PENGUIN"), ("c", "alice", "TITANIC")):
        view.put(query(name, user, dataset, status=SUCCEEDED))
    assert list(view.indexed(HISTORY_INDEX, ("alice", "PENGUIN"))) == ["a"]


def test_a_failed_query_leaves_the_in_flight_count_and_stays_on_its_owners_dashboard_alone() -> None:
    view = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    view.put(query(version=1, status={"phase": "Running"}))
    view.put(query(version=2, status={"phase": "Failed"}))
    assert (dict(view.indexed(IN_FLIGHT_INDEX, "alice")), set(view.objects["q1"])) == ({}, {"metadata", "dashboard"})


def test_the_dashboard_entries_are_filed_by_user() -> None:
    view = query_feed(client=None, namespace="dpkube")  # type: ignore[arg-type]
    for name, user, status in (("a", "alice", SUCCEEDED), ("b", "bob", {"phase": "Pending"}),
                               ("c", "alice", {"phase": "Rejected"})):
        view.put(query(name, user, status=status))
    assert sorted(view.indexed(DASHBOARD_INDEX, "alice")) == ["a", "c"]
