"""The Lomas-style client against a fake server: the bodies it sends, the answers it returns, the errors it raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
import pytest

from dpkube.client import (
    Client,
    ExternalLibraryException,
    InternalServerException,
    InvalidQueryException,
    QueryProgress,
    QueryStillRunningException,
    UnauthorizedAccessException,
)
from dpkube.models import examples

URL = "http://dpkube.test"


class FakeServer:
    """Records requests and answers each with `reply(path, body)`."""

    def __init__(self, reply: Callable[[str, dict[str, Any]], httpx.Response]) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply(request.url.path, json.loads(request.content or b"{}"))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def answering(payload: Any, status: int = 200) -> FakeServer:
    return FakeServer(lambda path, body: httpx.Response(status, json=payload))


def client_of(server: FakeServer, **kwargs: Any) -> Client:
    return Client(URL, kwargs.pop("token", "dpk_secret"), "PENGUIN", transport=httpx.MockTransport(server), **kwargs)


SQL_ANSWER = {"requested_by": "alice", "spent_epsilon": 0.1, "spent_delta": 1.5e-5,
              "query_response": {"index": [0], "columns": ["NB_ROW"], "data": [[342]], "index_names": [None],
                                 "column_names": [None]}}


def test_the_token_is_sent_as_a_bearer_credential_and_no_user_header() -> None:
    server = answering({"initial_epsilon": 10.0, "initial_delta": 0.005})
    client_of(server).get_initial_budget()
    assert server.requests[0].headers["Authorization"] == "Bearer dpk_secret"
    assert "user-name" not in server.requests[0].headers


def test_without_a_token_the_user_is_named_in_the_lomas_header() -> None:
    server = answering({"initial_epsilon": 10.0, "initial_delta": 0.005})
    client_of(server, token=None, user_name="alice").get_initial_budget()
    assert server.requests[0].headers["user-name"] == "alice"
    assert "Authorization" not in server.requests[0].headers


@pytest.mark.parametrize(("method", "path", "answer"), [
    ("get_dataset_metadata", "/get_dataset_metadata", {"max_ids": 1}),
    ("get_initial_budget", "/get_initial_budget", {"initial_epsilon": 10.0, "initial_delta": 0.005}),
    ("get_total_spent_budget", "/get_total_spent_budget", {"total_spent_epsilon": 0.0, "total_spent_delta": 0.0}),
    ("get_remaining_budget", "/get_remaining_budget", {"remaining_epsilon": 10.0, "remaining_delta": 0.005}),
])
def test_dataset_routes_post_the_dataset_name_and_return_the_answer(method: str, path: str, answer: dict) -> None:
    server = answering(answer)
    assert getattr(client_of(server), method)() == answer
    assert server.paths == [path]
    assert server.bodies == [examples.GET_DB_DATA]


def test_previous_queries_are_the_list_inside_the_answer() -> None:
    server = answering({"previous_queries": [{"dp_librairy": "opendp"}]})
    assert client_of(server).get_previous_queries() == [{"dp_librairy": "opendp"}]


def test_the_dummy_dataset_is_a_dataframe_with_the_wire_dtypes() -> None:
    server = answering({
        "dummy_dict": [{"species": "Adelie", "bill": 40.5, "n": 3, "ok": True, "day": "2020-01-02T00:00:00"},
                       {"species": "Gentoo", "bill": 50.0, "n": None, "ok": False, "day": "2021-05-06T00:00:00"}],
        "dtypes": {"species": "string", "bill": "float", "n": "int", "ok": "boolean", "day": "string"},
        "datetime_columns": ["day"],
    })
    frame = client_of(server).get_dummy_dataset()
    assert server.bodies == [examples.GET_DUMMY_DATASET]
    assert list(frame.columns) == ["species", "bill", "n", "ok", "day"]
    assert str(frame["species"].dtype) == "string"
    assert str(frame["bill"].dtype) == "float64"
    assert str(frame["n"].dtype) == "Int64" and frame["n"].isna().sum() == 1
    assert str(frame["ok"].dtype) == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(frame["day"])


def test_a_sql_query_sends_the_seed_body_and_returns_the_answer_as_a_dataframe() -> None:
    server = answering(SQL_ANSWER)
    answer = client_of(server).smartnoise_sql.query("SELECT COUNT(*) AS NB_ROW FROM df", 0.1, 1e-5,
                                                   mechanisms={"count": "gaussian"})
    assert server.paths == ["/smartnoise_sql_query"]
    assert server.bodies == [examples.SMARTNOISE_SQL_QUERY]
    assert answer["spent_epsilon"] == 0.1
    assert answer["query_response"].loc[0, "NB_ROW"] == 342


def test_sql_defaults_are_the_lomas_clients_no_mechanisms_and_postprocessing() -> None:
    server = answering(SQL_ANSWER)
    client_of(server).smartnoise_sql.query("SELECT COUNT(*) FROM df", 1.0, 1e-5)
    assert server.bodies[0]["mechanisms"] == {} and server.bodies[0]["postprocess"] is True


def test_dummy_queries_go_to_the_dummy_route_with_100_rows_and_seed_42_by_default() -> None:
    server = answering({**SQL_ANSWER, "epsilon": 0.1, "delta": 1e-5})
    client = client_of(server)
    client.smartnoise_sql.query("SELECT COUNT(*) AS NB_ROW FROM df", 0.1, 1e-5, {"count": "gaussian"}, dummy=True)
    client.smartnoise_sql.dummy_query("SELECT COUNT(*) AS NB_ROW FROM df", 0.1, 1e-5, {"count": "gaussian"},
                                      nb_rows=10, seed=1)
    assert server.paths == ["/dummy_smartnoise_sql_query"] * 2
    assert server.bodies[0] == {**examples.SMARTNOISE_SQL_QUERY, **examples.DUMMY}
    assert (server.bodies[1]["dummy_nb_rows"], server.bodies[1]["dummy_seed"]) == (10, 1)


def test_cost_estimates_send_the_request_fields_only() -> None:
    server = answering({"epsilon_cost": 0.1, "delta_cost": 1.5e-5})
    client = client_of(server)
    assert client.smartnoise_sql.cost("SELECT COUNT(*) AS NB_ROW FROM df", 0.1, 1e-5, {"count": "gaussian"}) == {
        "epsilon_cost": 0.1, "delta_cost": 1.5e-5}
    client.opendp.cost(examples.OPENDP_JSON, fixed_delta=1e-5)
    client.diffprivlib.cost(examples.DIFFPRIVLIB_JSON, examples.PENGUIN_FEATURES, ["species"],
                            test_train_split_seed=4)
    client.smartnoise_synth.cost("dpctgan", 0.1, 1e-5, synth_params={"embedding_dim": 128, "batch_size": 50,
                                                                       "epochs": 5})
    assert server.paths == ["/estimate_smartnoise_sql_cost", "/estimate_opendp_cost", "/estimate_diffprivlib_cost",
                            "/estimate_smartnoise_synth_cost"]
    assert server.bodies == [examples.SMARTNOISE_SQL_COST, examples.OPENDP_COST, examples.DIFFPRIVLIB_COST,
                             examples.SMARTNOISE_SYNTH_COST]


def test_library_queries_send_the_seed_bodies() -> None:
    server = answering({"requested_by": "alice", "query_response": 1.0, "spent_epsilon": 1.0, "spent_delta": 0.0})
    client = client_of(server)
    client.opendp.query(examples.OPENDP_JSON, fixed_delta=1e-5)
    client.diffprivlib.query(examples.DIFFPRIVLIB_JSON, examples.PENGUIN_FEATURES, ["species"],
                             test_train_split_seed=4)
    client.smartnoise_synth.query("dpctgan", 0.1, 1e-5, synth_params={"embedding_dim": 128, "batch_size": 50,
                                                                        "epochs": 5}, return_model=True)
    assert server.bodies == [examples.OPENDP_QUERY, examples.DIFFPRIVLIB_QUERY, examples.SMARTNOISE_SYNTH_QUERY]


def test_pipelines_may_be_logger_objects_with_to_json() -> None:
    class Pipeline:
        def to_json(self) -> str:
            return examples.OPENDP_JSON

    server = answering({"query_response": 1.0, "epsilon": 1.0, "delta": 0.0})
    client_of(server).opendp.dummy_query(Pipeline())
    assert server.bodies[0] == {"dataset_name": "PENGUIN", "opendp_json": examples.OPENDP_JSON, "fixed_delta": None,
                                **examples.DUMMY}


@pytest.mark.parametrize(("status", "body", "kind"), [
    (400, {"InvalidQueryException": "Dataset X does not exist."}, InvalidQueryException),
    (403, {"UnauthorizedAccessException": "alice does not have access to IRIS."}, UnauthorizedAccessException),
    (401, {"UnauthorizedAccessException": "Authentication required"}, UnauthorizedAccessException),
    (500, {"InternalServerException": "Internal server error."}, InternalServerException),
    (422, {"detail": [{"type": "missing", "loc": ["body", "delta"], "msg": "Field required"}]},
     InvalidQueryException),
    (504, {"QueryStillRunningException": "still Running", "namespace": "dpkube", "name": "lomas-query-1"},
     QueryStillRunningException),
    (502, "Bad Gateway", InternalServerException),
])
def test_error_answers_raise_the_lomas_exception_of_their_key(status: int, body: Any, kind: type) -> None:
    server = FakeServer(lambda path, _: httpx.Response(status, json=body) if isinstance(body, dict)
                        else httpx.Response(status, text=body))
    with pytest.raises(kind) as raised:
        client_of(server).get_remaining_budget()
    assert raised.value.status_code == status


def test_a_library_error_names_its_library() -> None:
    server = answering({"ExternalLibraryException": "Error obtaining cost: Column cannot be found bill",
                        "library": "smartnoise_sql"}, status=422)
    with pytest.raises(ExternalLibraryException) as raised:
        client_of(server).smartnoise_sql.cost("SELECT AVG(bill) FROM df", 0.1, 1e-5)
    assert raised.value.library == "smartnoise_sql"
    assert raised.value.message == "Error obtaining cost: Column cannot be found bill"


def test_a_server_still_running_the_query_names_it() -> None:
    server = answering({"QueryStillRunningException": "still Running", "namespace": "dpkube", "name": "q1"}, 504)
    with pytest.raises(QueryStillRunningException) as raised:
        client_of(server).smartnoise_sql.query("SELECT COUNT(*) FROM df", 0.1, 1e-5)
    assert (raised.value.namespace, raised.value.name) == ("dpkube", "q1")


def test_a_client_side_timeout_is_a_still_running_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = Client(URL, "dpk_secret", "PENGUIN", transport=httpx.MockTransport(slow))
    with pytest.raises(QueryStillRunningException):
        client.smartnoise_sql.query("SELECT COUNT(*) FROM df", 0.1, 1e-5)


def following(*replies: httpx.Response) -> FakeServer:
    """Answers the submission and each poll of its Location with the next reply."""
    queue = list(replies)
    return FakeServer(lambda path, body: queue.pop(0))


def accepted(phase: str, place: int | None = None) -> httpx.Response:
    return httpx.Response(202, headers={"Location": "/queries/lomas-query-1"},
                          json={"name": "lomas-query-1", "phase": phase, "queue_position": place,
                                "message": None, "elapsed_seconds": 0.5})


def test_with_a_progress_callback_a_query_is_followed_until_it_answers(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    server = following(accepted("Pending", 2), accepted("Pending", 1), accepted("Running"),
                       httpx.Response(200, json=SQL_ANSWER))
    seen: list[QueryProgress] = []
    answer = client_of(server, progress=seen.append).smartnoise_sql.query("SELECT COUNT(*) FROM df", 0.1, 1e-5)
    assert server.requests[0].headers["Prefer"] == "respond-async"
    assert server.paths == ["/smartnoise_sql_query"] + ["/queries/lomas-query-1"] * 3
    assert [(p.phase.value, p.queue_position) for p in seen] == [("Pending", 2), ("Pending", 1), ("Running", None)]
    assert answer["spent_epsilon"] == 0.1


def test_a_followed_query_that_fails_raises_its_lomas_error(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    server = following(accepted("Running"), httpx.Response(400, json={"InvalidQueryException": "Not enough budget"}))
    with pytest.raises(InvalidQueryException, match="Not enough budget"):
        client_of(server, progress=lambda p: None).smartnoise_sql.query("SELECT COUNT(*) FROM df", 0.1, 1e-5)


def test_a_server_that_does_not_answer_asynchronously_is_answered_at_once() -> None:
    seen: list[QueryProgress] = []
    server = answering(SQL_ANSWER)
    client_of(server, progress=seen.append).smartnoise_sql.query("SELECT COUNT(*) FROM df", 0.1, 1e-5)
    assert (server.paths, seen) == (["/smartnoise_sql_query"], [])


def test_a_followed_query_past_the_clients_timeout_is_still_running_by_name(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    server = following(accepted("Pending", 1))
    with pytest.raises(QueryStillRunningException) as raised:
        client_of(server, progress=lambda p: None, timeout=0.0).smartnoise_sql.query("SELECT 1 FROM df", 0.1, 0.0)
    assert raised.value.name == "lomas-query-1"
