"""How a warm runner gets its one query: it long-polls the operator's claim endpoint with its token.

The runner has imported the libraries before it asks, so the operator only hands queries to pods
that can start at once. The answer names the query's uid (for the result Secret) and its input.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from dpkube.models.runner import RunnerInput


class ClaimRefused(RuntimeError):
    """The operator will never give this pod a query (unknown pod or token, or the query is gone)."""


@dataclass(frozen=True)
class Claim:
    uid: str
    input: RunnerInput


def claim(url: str, namespace: str, pod: str, token: str, *, give_up_after: float = 3600.0) -> Claim:
    """Block until the operator assigns a query to this pod."""
    body = json.dumps({"namespace": namespace, "pod": pod, "token": token}).encode()
    deadline = time.monotonic() + give_up_after
    delay = 0.05
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{url.rstrip('/')}/claim", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if response.status == 200:
                    answer = json.loads(response.read())
                    return Claim(answer["uid"], RunnerInput.model_validate(answer["input"]))
                delay = 0.05
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 403, 410):
                raise ClaimRefused(f"claim refused with {exc.code}") from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise ClaimRefused("no query was assigned in time")
