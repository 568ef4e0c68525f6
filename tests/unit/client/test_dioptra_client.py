"""The Dioptra-style client against a fake server: the stock client's routes, forms and JSON-for-everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from dpkube.client import DioptraClient


class Recorder:
    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.status, self.body = status, body if body is not None else {"status": "Success"}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)

    @property
    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


def client(recorder: Recorder, address: str = "http://h:5000", **kwargs: Any) -> DioptraClient:
    return DioptraClient(address, transport=httpx.MockTransport(recorder), **kwargs)


@pytest.mark.parametrize(("call", "method", "path"), [
    (lambda c: c.list_experiments(), "GET", "/api/v0/experiment/"),
    (lambda c: c.register_experiment("My Exp"), "POST", "/api/v0/experiment/"),
    (lambda c: c.get_experiment_by_id(3), "GET", "/api/v0/experiment/3"),
    (lambda c: c.get_experiment_by_name("mnist"), "GET", "/api/v0/experiment/name/mnist"),
    (lambda c: c.list_queues(), "GET", "/api/v0/queue/"),
    (lambda c: c.register_queue(), "POST", "/api/v0/queue/"),
    (lambda c: c.get_queue_by_id(1), "GET", "/api/v0/queue/1"),
    (lambda c: c.get_queue_by_name("tensorflow_cpu"), "GET", "/api/v0/queue/name/tensorflow_cpu"),
    (lambda c: c.lock_queue("q"), "PUT", "/api/v0/queue/name/q/lock"),
    (lambda c: c.unlock_queue("q"), "DELETE", "/api/v0/queue/name/q/lock"),
    (lambda c: c.list_jobs(), "GET", "/api/v0/job/"),
    (lambda c: c.get_job_by_id("4eb2305e"), "GET", "/api/v0/job/4eb2305e"),
    (lambda c: c.list_all_task_plugins(), "GET", "/api/v0/taskPlugin/"),
    (lambda c: c.list_builtin_task_plugins(), "GET", "/api/v0/taskPlugin/dioptra_builtins"),
    (lambda c: c.list_custom_task_plugins(), "GET", "/api/v0/taskPlugin/dioptra_custom"),
    (lambda c: c.get_builtin_task_plugin("opendp"), "GET", "/api/v0/taskPlugin/dioptra_builtins/opendp"),
    (lambda c: c.get_custom_task_plugin("p1"), "GET", "/api/v0/taskPlugin/dioptra_custom/p1"),
    (lambda c: c.delete_custom_task_plugin("p1"), "DELETE", "/api/v0/taskPlugin/dioptra_custom/p1"),
])
def test_each_method_calls_the_stock_clients_route(call, method: str, path: str) -> None:
    recorder = Recorder()
    call(client(recorder))
    assert recorder.calls == [(method, path)]


def test_registrations_send_the_name_as_json_and_queue_defaults_to_tensorflow_cpu() -> None:
    recorder = Recorder()
    c = client(recorder)
    c.register_experiment("My Exp")
    c.register_queue()
    assert [r.content for r in recorder.requests] == [b'{"name":"My Exp"}', b'{"name":"tensorflow_cpu"}']


def test_a_trailing_slash_in_the_address_does_not_double_it() -> None:
    recorder = Recorder()
    client(recorder, "http://h:5000/").list_jobs()
    assert recorder.requests[0].url.path == "/api/v0/job/"


def test_the_address_defaults_to_the_dioptra_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIOPTRA_RESTAPI_URI", "http://env-host:1234")
    recorder = Recorder()
    DioptraClient(transport=httpx.MockTransport(recorder)).list_queues()
    assert str(recorder.requests[0].url) == "http://env-host:1234/api/v0/queue/"


def test_a_token_is_sent_as_bearer_and_none_sends_no_credentials() -> None:
    with_token, without = Recorder(), Recorder()
    client(with_token, token="dpk_x").list_jobs()
    client(without).list_jobs()
    assert with_token.requests[0].headers["Authorization"] == "Bearer dpk_x"
    assert "Authorization" not in without.requests[0].headers


def test_submit_job_sends_the_form_fields_and_the_workflow_file(tmp_path: Path) -> None:
    archive = tmp_path / "workflows.tar.gz"
    archive.write_bytes(b"archive-bytes")
    recorder = Recorder(body={"jobId": "j1", "status": "queued"})
    reply = client(recorder).submit_job(archive, "exp", "count", entry_point_kwargs="-P epsilon=1.0",
                                        depends_on="j0")
    assert reply == {"jobId": "j1", "status": "queued"}
    content = recorder.requests[0].content.decode("latin-1")
    assert recorder.requests[0].headers["Content-Type"].startswith("multipart/form-data")
    for name, value in (("experimentName", "exp"), ("queue", "tensorflow_cpu"), ("timeout", "24h"),
                        ("entryPoint", "count"), ("entryPointKwargs", "-P epsilon=1.0"), ("dependsOn", "j0")):
        assert f'name="{name}"\r\n\r\n{value}\r\n' in content
    assert 'name="workflow"; filename="workflows.tar.gz"' in content and "archive-bytes" in content


def test_submit_job_leaves_out_absent_optional_fields(tmp_path: Path) -> None:
    archive = tmp_path / "w.tar.gz"
    archive.write_bytes(b"x")
    recorder = Recorder()
    client(recorder).submit_job(archive, "exp", "count")
    content = recorder.requests[0].content.decode("latin-1")
    assert "entryPointKwargs" not in content and "dependsOn" not in content


def test_upload_sends_the_plugin_name_collection_and_file(tmp_path: Path) -> None:
    package = tmp_path / "p1.tar.gz"
    package.write_bytes(b"tar")
    recorder = Recorder(body={"taskPluginName": "p1", "collection": "dioptra_custom", "modules": ["a.py"]})
    client(recorder).upload_custom_plugin_package("p1", package)
    content = recorder.requests[0].content.decode("latin-1")
    assert 'name="taskPluginName"\r\n\r\np1\r\n' in content
    assert 'name="collection"\r\n\r\ndioptra_custom\r\n' in content
    assert 'name="taskPluginFile"; filename="p1.tar.gz"' in content


def test_error_replies_are_returned_as_dicts_like_the_stock_client() -> None:
    recorder = Recorder(404, {"message": "Not Found - The requested experiment does not exist"})
    assert "Not Found" in client(recorder).get_experiment_by_id(999999)["message"]
