"""One HTTP connection to a Lomas-compatible server: credentials on every request, errors as exceptions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from dpkube.client.errors import QueryStillRunningException, error_from_response
from dpkube.models.progress import QueryProgress

USER_HEADER = "user-name"
DEFAULT_TIMEOUT = 600.0
"""Private queries wait for their pod on the server; a synthesizer may train for minutes."""
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 1.0

Progress = Callable[[QueryProgress], None]
"""Called with a query's progress each time it is read, while it runs."""


class Connection:
    """POSTs JSON bodies and returns the JSON answers; non-2xx answers raise the Lomas exception types.
    With a `progress` callback, queries are submitted without waiting and followed until they end."""

    def __init__(self, url: str, *, token: str | None = None, user_name: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None,
                 progress: Progress | None = None) -> None:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if user_name:
            headers[USER_HEADER] = user_name
        self.timeout = timeout
        self.progress = progress
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return _answer(self._send("POST", path, json=body))

    def query(self, path: str, body: dict[str, Any]) -> Any:
        """A query route's answer. With a progress callback, the query is submitted with `Prefer: respond-async`
        and its `Location` is polled, each progress handed to the callback; a server that ignores the
        preference answers at once, as without one."""
        if self.progress is None:
            return self.post(path, body)
        deadline = time.monotonic() + self.timeout
        response = self._send("POST", path, json=body, headers={"Prefer": "respond-async"})
        pause = FIRST_POLL_SECONDS
        while response.status_code == 202:
            progress = QueryProgress.model_validate(response.json())
            self.progress(progress)
            if time.monotonic() + pause > deadline:
                raise QueryStillRunningException(
                    f"Query {progress.name} is still {progress.phase.value} after the client's timeout "
                    f"({self.timeout:g} s); follow it at {response.headers['Location']}.", progress.name,
                    status_code=None)
            time.sleep(pause)
            pause = min(MAX_POLL_SECONDS, pause * 1.5)
            response = self._send("GET", response.headers["Location"])
        return _answer(response)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise QueryStillRunningException(
                f"No answer from {path} within the client's timeout ({exc}); the query may still finish: "
                "look for it with get_previous_queries().", status_code=None) from None

    def close(self) -> None:
        self.http.close()


def _answer(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer, else the Lomas exception of the error body."""
    if response.is_success:
        return response.json()
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    raise error_from_response(response.status_code, payload)
