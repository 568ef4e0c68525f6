"""What a reconcile does without a step: an event a write of this process already answered costs no read,
and an admission that found its queue busy is tried again on the query's backoff."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dpkube.operator import admission as A
from dpkube.operator.recall import RETRY_FIRST_SECONDS
from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Registry
from dpkube_testing.builders import dpquery


class Untouchable:
    """Any use of a collaborator fails the test: the reconcile must do nothing."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the reconcile used {name}")


def query(version: int) -> dict[str, Any]:
    return {"metadata": {"uid": "u1", "namespace": "ns", "name": "q", "resourceVersion": str(version)},
            "spec": {}, "status": {"phase": "Admitted"}}


async def test_an_event_answered_by_a_write_made_while_it_waited_for_the_lock_is_skipped() -> None:
    nobody = Untouchable()
    reconciler = Reconciler(nobody, Registry(), nobody, nobody, nobody, nobody)  # type: ignore[arg-type]
    async with reconciler._locks[("ns", "q")]:  # a step of the same query is under way
        event = asyncio.ensure_future(reconciler.reconcile("ns", "q", query(10)))
        await asyncio.sleep(0)
        reconciler.recall.wrote(query(11))  # the step writes the status
    await event


class BusyAdmission:
    """Every admission finds its queue (or the pricing pool) busy."""

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Busy:
        return A.Busy()


async def test_a_query_whose_admission_was_busy_is_tried_again_on_its_backoff() -> None:
    nobody = Untouchable()
    reconciler = Reconciler(nobody, Registry(), nobody, BusyAdmission(), nobody, nobody)  # type: ignore[arg-type]
    pending = dpquery("q")
    pending["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "10"}

    await reconciler.reconcile("ns", "q", pending)

    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == {("ns", "q")}
