"""An event that a write of this process has already answered costs no read, no step."""

from __future__ import annotations

import asyncio
from typing import Any

from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Registry


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
