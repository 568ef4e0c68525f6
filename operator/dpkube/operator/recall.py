"""What this operator process remembers of the queries it works on, so it need not read them again.

Only the leader writes a query's status, each write under the query's lock, so the body it wrote last
is the query's current state: runner calls and watch events use it instead of a GET, and an event that
brings back nothing newer than that write is an echo to skip. It also remembers when each query times
out, and the backoff of each query whose last step failed. Nothing here is the truth: after a restart
it is empty and every query is read once.
"""

from __future__ import annotations

import time
from typing import Any

from dpkube.models.conditions import Reason
from dpkube.models.dpquery import Phase, admission_reason, phase_of

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
ENDED_KEPT = 100_000
"""Ended queries whose last version is remembered, so a late event of an earlier version is recognised."""
IN_LINE = frozenset({Reason.WAITING_FOR_QUEUE, Reason.QUEUE_FULL})
"""Waits of a query whose queue is open: its queue's head line takes it next, from the body remembered here."""


def version(body: dict[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def kept(body: dict[str, Any]) -> dict[str, Any]:
    """The body without its managedFields, which no step reads: more than half of a query's memory, and a burst
    keeps every admitted query."""
    if "managedFields" not in body["metadata"]:
        return body
    return {**body, "metadata": {key: value for key, value in body["metadata"].items() if key != "managedFields"}}


def _in_line(body: dict[str, Any]) -> bool:
    """Pending in an open queue, waiting for its turn or a free slot."""
    return phase_of(body) == Phase.PENDING and admission_reason(body) in IN_LINE


class Recall:
    """Bodies of admitted and running queries, the versions this process wrote, deadlines and retries."""

    def __init__(self) -> None:
        self._bodies: dict[str, dict[str, Any]] = {}
        self._written: dict[str, int] = {}
        self.deadlines: dict[str, tuple[float, str, str]] = {}
        """uid -> (when it times out, namespace, name)."""
        self._retries: dict[tuple[str, str], tuple[float, int]] = {}
        self._ended: dict[str, int] = {}
        self._touched: dict[str, float] = {}
        """uid -> when (monotonic) this process last saw or wrote the query."""

    def body(self, uid: str) -> dict[str, Any] | None:
        return self._bodies.get(uid)

    def newest(self, seen: dict[str, Any]) -> dict[str, Any] | None:
        """The newer of an event's object and the one this process last wrote; None when the event predates
        the query's end here (a late event must not admit an ended query again)."""
        uid = seen["metadata"]["uid"]
        if version(seen) < self._ended.get(uid, 0):
            return None
        mine = self._bodies.get(uid)
        if mine is not None and version(mine) > version(seen):
            return mine
        self.keep(seen)
        return seen

    def keep(self, body: dict[str, Any]) -> None:
        """Remember the body of a query this process steps again soon (admitted, running, or in line in an open
        queue); forget any other (a backlog in a locked queue would hold thousands for nothing)."""
        uid, phase = body["metadata"]["uid"], phase_of(body)
        self._touched[uid] = time.monotonic()
        if phase is not None and phase.terminal:
            self._written.pop(uid, None)
            self._ended[uid] = max(version(body), self._ended.pop(uid, 0))
            if len(self._ended) > ENDED_KEPT:
                self._ended.pop(next(iter(self._ended)))
        if (phase in (Phase.ADMITTED, Phase.RUNNING) or _in_line(body)) \
                and not body["metadata"].get("deletionTimestamp"):
            self._bodies[uid] = kept(body)
        else:
            self._bodies.pop(uid, None)

    def hold(self, body: dict[str, Any]) -> None:
        """Remember a query that waits for its turn unwritten: its queue's head line takes it from this body."""
        uid = body["metadata"]["uid"]
        self._touched[uid] = time.monotonic()
        self._bodies[uid] = kept(body)

    def wrote(self, body: dict[str, Any]) -> None:
        """This process wrote `body`'s status. A write that found the query being deleted, or ended it, makes no
        echo: the deletion (or the clean-up) still has to be reconciled, whichever event brings it."""
        self.keep(body)
        uid = body["metadata"]["uid"]
        if version(body) and not (phase_of(body) or Phase.PENDING).terminal \
                and not body["metadata"].get("deletionTimestamp"):
            self._written[uid] = version(body)
        else:
            self._written.pop(uid, None)

    def is_echo(self, body: dict[str, Any]) -> bool:
        """Whether a watch event only brings back the status this process wrote last, or something older."""
        written = self._written.get(body["metadata"]["uid"])
        return written is not None and version(body) <= written

    def expired(self, now: float) -> set[tuple[str, str]]:
        """Queries past their deadline (wall-clock `now`)."""
        return {(namespace, name) for deadline, namespace, name in list(self.deadlines.values()) if now > deadline}

    def quiet(self, uid: str, seconds: float) -> bool:
        """Nothing of the query was seen or written here for `seconds` (or ever, since this process started)."""
        return time.monotonic() - self._touched.get(uid, float("-inf")) >= seconds

    def forget(self, uid: str) -> None:
        self._touched.pop(uid, None)
        self._bodies.pop(uid, None)
        self._ended.pop(uid, None)
        self._written.pop(uid, None)
        self.deadlines.pop(uid, None)

    def failed(self, key: tuple[str, str]) -> None:
        """A step of this query failed: try again after a backoff that doubles with each failure."""
        _, failures = self._retries.get(key, (0.0, 0))
        delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** failures)
        self._retries[key] = (time.monotonic() + delay, failures + 1)

    def succeeded(self, key: tuple[str, str]) -> None:
        self._retries.pop(key, None)

    def due_retries(self, now: float) -> set[tuple[str, str]]:
        """Queries whose failed step is due to be tried again."""
        return {key for key, (due, _) in self._retries.items() if due <= now}
