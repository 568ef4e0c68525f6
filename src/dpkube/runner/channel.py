"""The runner's side of the claim channel: its one query's input, leave to read the data, and the result.

Every call carries the pod's own secret and speaks only for the pod's own query. The result is
retried until the operator has taken it (the operator answers only once the query has ended as the
output says), so an operator restart between the two loses nothing.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from dpkube.models.runner import RunnerInput, RunnerOutput, RunnerSettings

REQUEST_SECONDS = 60.0
MAX_DELAY = 2.0


class ChannelRefused(RuntimeError):
    """The operator will not serve this pod (unknown pod or token, or its query has ended)."""


@dataclass(frozen=True)
class Claim:
    uid: str
    input: RunnerInput
    read_allowed: bool = False
    """The operator recorded the leave to read with the query's admission (a warm pod): no need to ask."""


class RunnerChannel:
    """Calls to the operator's claim endpoint, retried with backoff while the operator is unreachable."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings

    def _call(self, route: str, extra: dict[str, Any] | None = None, *, give_up_after: float) -> dict[str, Any]:
        """POST until an answer with a body; 204 (not yet) and connection failures are retried."""
        body = json.dumps({"namespace": self.settings.pod_namespace, "pod": self.settings.pod_name,
                           "token": self.settings.claim_token, **(extra or {})}).encode()
        deadline = time.monotonic() + give_up_after
        delay = 0.02
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{self.settings.claim_url.rstrip('/')}/{route}", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                    if response.status == 200:
                        answer: dict[str, Any] = json.loads(response.read() or b"{}")
                        return answer
                    delay = 0.02  # 204: the operator is there, the answer is not ready yet
            except urllib.error.HTTPError as exc:
                if exc.code in (400, 403, 409, 410, 413):
                    raise ChannelRefused(f"{route} refused with {exc.code}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
        raise ChannelRefused(f"{route}: no answer within {give_up_after:g} s")

    def claim(self) -> Claim:
        """Block until the operator hands this pod its query."""
        answer = self._call("claim", give_up_after=self.settings.wait_timeout)
        return Claim(answer["uid"], RunnerInput.model_validate(answer["input"]), answer.get("readAllowed") is True)

    def allow_read(self) -> None:
        """Ask leave to read the private data; returns only once the operator has recorded it."""
        self._call("read", give_up_after=self.settings.wait_timeout)

    def deliver(self, output: RunnerOutput) -> None:
        """Hand in the output; returns once the operator has taken it."""
        self._call("result", {"output": output.model_dump(mode="json", by_alias=False)},
                   give_up_after=self.settings.wait_timeout)
