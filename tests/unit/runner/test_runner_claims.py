"""A runner in a pod: it asks the operator's leave before it reads the data, unless its claim carried it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dpkube.models.payloads import Library
from dpkube.runner.__main__ import main
from dpkube_testing.builders import runner_input


class Operator:
    """The operator's claim channel, answering one claim: the routes the runner called, and its output."""

    def __init__(self, read_allowed: bool) -> None:
        self.read_allowed = read_allowed
        self.routes: list[str] = []
        self.output: dict[str, Any] | None = None

    def answer(self, route: str, ask: dict[str, Any]) -> dict[str, Any]:
        self.routes.append(route)
        if route == "claim":
            return {"uid": "u1", "input": runner_input(Library.OPENDP), "readAllowed": self.read_allowed}
        if route == "result":
            self.output = ask["output"]
        return {}


@pytest.fixture
def operator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Operator]:
    operator = Operator(read_allowed=request.param)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            ask = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(operator.answer(self.path.strip("/"), ask)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name, value in {"CLAIM_URL": f"http://127.0.0.1:{server.server_address[1]}", "CLAIM_TOKEN": "secret",
                        "POD_NAMESPACE": "ns", "POD_NAME": "pod-1", "LIBRARIES": "opendp"}.items():
        monkeypatch.setenv(f"DPKUBE_{name}", value)
    yield operator
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("operator", [True], indirect=True)
def test_a_runner_whose_claim_carried_the_leave_to_read_does_not_ask_again(operator: Operator) -> None:
    assert main(["--claim"]) == 0
    assert operator.routes == ["claim", "result"]
    assert operator.output is not None and operator.output["ok"]


@pytest.mark.parametrize("operator", [False], indirect=True)
def test_a_runner_asks_leave_before_it_reads_when_its_claim_did_not_carry_it(operator: Operator) -> None:
    assert main(["--claim"]) == 0
    assert operator.routes == ["claim", "read", "result"]
    assert operator.output is not None and operator.output["ok"]
