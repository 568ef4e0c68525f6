"""One HTTP connection to a Lomas-compatible server: credentials on every request, errors as exceptions."""

from __future__ import annotations

from typing import Any

import httpx

from dpkube.client.errors import QueryStillRunningException, error_from_response

USER_HEADER = "user-name"
DEFAULT_TIMEOUT = 600.0
"""Private queries wait for their pod on the server; a synthesizer may train for minutes."""


class Connection:
    """POSTs JSON bodies and returns the JSON answers; non-2xx answers raise the Lomas exception types."""

    def __init__(self, url: str, *, token: str | None = None, user_name: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None) -> None:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if user_name:
            headers[USER_HEADER] = user_name
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            response = self.http.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise QueryStillRunningException(
                f"No answer from {path} within the client's timeout ({exc}); the query may still finish: "
                "look for it with get_previous_queries().", status_code=None) from None
        if response.is_success:
            return response.json()
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        raise error_from_response(response.status_code, payload)

    def close(self) -> None:
        self.http.close()
