"""User commands through the facade, against a fake facade: what they send and what they print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from dpkube.cli import options
from dpkube.cli.__main__ import main
from dpkube.client.connection import Connection
from dpkube.models import examples

BUDGET = {
    "/get_initial_budget": {"initial_epsilon": 10.0, "initial_delta": 0.005},
    "/get_total_spent_budget": {"total_spent_epsilon": 0.5, "total_spent_delta": 1e-5},
    "/get_remaining_budget": {"remaining_epsilon": 9.5, "remaining_delta": 0.00499},
}


class FakeFacade:
    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """The path's answer (the next one, for a list); a 202 says where to follow the query."""
        self.requests.append(request)
        answer = self.answers[request.url.path]
        status, body = answer.pop(0) if isinstance(answer, list) else answer
        headers = {"Location": f"/queries/{body['name']}"} if status == 202 else None
        return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def facade(monkeypatch: pytest.MonkeyPatch) -> FakeFacade:
    fake = FakeFacade({path: (200, body) for path, body in BUDGET.items()})
    real = options.facade

    def connect(args, timeout: float = 600.0) -> Connection:
        real(args, timeout)  # the real checks of URL and credentials
        bearer, user = options.token(args), options.user(args)
        return Connection(options.url(args), token=bearer, user_name=None if bearer else user,
                          transport=httpx.MockTransport(fake))

    monkeypatch.setattr(options, "facade", connect)
    monkeypatch.setenv("DPKUBE_URL", "http://dpkube.test")
    monkeypatch.setenv("DPKUBE_TOKEN", "dpk_env")
    return fake


def test_budget_show_prints_initial_spent_and_remaining(facade: FakeFacade, capsys) -> None:
    assert main(["budget", "show", "PENGUIN"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["initial", "10", "0.005"]
    assert lines[2].split() == ["spent", "0.5", "1e-05"]
    assert lines[3].split() == ["remaining", "9.5", "0.00499"]
    assert {r.headers["Authorization"] for r in facade.requests} == {"Bearer dpk_env"}


def test_flags_override_the_environment(facade: FakeFacade) -> None:
    main(["budget", "show", "--token", "dpk_flag"])
    assert facade.requests[0].headers["Authorization"] == "Bearer dpk_flag"


def test_a_trusted_header_deployment_needs_only_the_user(facade: FakeFacade, monkeypatch) -> None:
    monkeypatch.delenv("DPKUBE_TOKEN")
    monkeypatch.setenv("DPKUBE_USER", "alice")
    main(["budget", "show"])
    assert facade.requests[0].headers["user-name"] == "alice"


def test_without_url_the_command_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPKUBE_URL", raising=False)
    with pytest.raises(SystemExit, match="DPKUBE_URL"):
        main(["budget", "show"])


def test_query_submit_posts_the_body_and_prints_the_answer(facade: FakeFacade, tmp_path: Path, capsys) -> None:
    answer = {"requested_by": "alice", "query_response": 1.0, "spent_epsilon": 0.1, "spent_delta": 1e-5}
    facade.answers["/smartnoise_sql_query"] = (200, answer)
    path = tmp_path / "q.json"
    path.write_text(json.dumps(examples.SMARTNOISE_SQL_QUERY))
    assert main(["query", "submit", str(path), "--library", "smartnoise_sql"]) == 0
    captured = capsys.readouterr()
    assert json.loads(facade.requests[0].content) == examples.SMARTNOISE_SQL_QUERY
    assert json.loads(captured.out) == answer
    assert "submitted to /smartnoise_sql_query" in captured.err and "done" in captured.err


def test_query_submit_follows_the_query_and_shows_its_progress(facade: FakeFacade, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    answer = {"requested_by": "alice", "query_response": 1.0, "spent_epsilon": 0.1, "spent_delta": 1e-5}
    facade.answers["/smartnoise_sql_query"] = (202, {"name": "lomas-query-1", "phase": "Pending"})
    facade.answers["/queries/lomas-query-1"] = [
        (202, {"name": "lomas-query-1", "phase": "Pending", "queue_position": 1, "elapsed_seconds": 0.4}),
        (202, {"name": "lomas-query-1", "phase": "Running", "elapsed_seconds": 1.5}), (200, answer)]
    path = tmp_path / "q.json"
    path.write_text(json.dumps(examples.SMARTNOISE_SQL_QUERY))
    assert main(["query", "submit", str(path), "--library", "smartnoise_sql"]) == 0
    captured = capsys.readouterr()
    assert facade.requests[0].headers["Prefer"] == "respond-async"
    assert "lomas-query-1: Pending, #1 in its queue, 0.4 s" in captured.err
    assert "lomas-query-1: Running, 1.5 s" in captured.err
    assert json.loads(captured.out) == answer


def test_a_refused_query_prints_the_lomas_error_and_fails(facade: FakeFacade, tmp_path: Path, capsys) -> None:
    facade.answers["/smartnoise_sql_query"] = (400, {"InvalidQueryException": "Not enough budget"})
    path = tmp_path / "q.json"
    path.write_text(json.dumps(examples.SMARTNOISE_SQL_QUERY))
    assert main(["query", "submit", str(path), "--library", "smartnoise_sql"]) == 1
    assert "InvalidQueryException: Not enough budget" in capsys.readouterr().err


def test_query_list_prints_one_line_per_previous_query(facade: FakeFacade, capsys) -> None:
    record = {"dp_librairy": "opendp", "timestamp": 0.0,
              "response": {"spent_epsilon": 0.25, "spent_delta": 0.0}}
    facade.answers["/get_previous_queries"] = (200, {"previous_queries": [record, record]})
    assert main(["query", "list", "--dataset", "PENGUIN"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[1].split() == ["1970-01-01", "00:00:00", "opendp", "0.25", "0"]


def test_query_list_with_a_chart_shows_the_running_spend_against_the_initial_budget(facade: FakeFacade,
                                                                                     capsys) -> None:
    record = {"dp_librairy": "opendp", "timestamp": 0.0, "response": {"spent_epsilon": 2.5, "spent_delta": 0.0}}
    facade.answers["/get_previous_queries"] = (200, {"previous_queries": [record, record]})
    assert main(["query", "list", "--dataset", "PENGUIN", "--chart"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].endswith(" 2.5") and lines[-2].endswith(" 5")
    assert lines[-1].startswith("remaining") and lines[-1].endswith(" 5 of 10")
