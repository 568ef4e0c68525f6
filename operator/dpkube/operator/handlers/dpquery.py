"""DPQuery events: record the query, then reconcile it if there is anything left to do."""

from __future__ import annotations

from typing import Any

import kopf

from dpkube.models.crd import GROUP, VERSION
from dpkube.models.dpquery import phase_of
from dpkube.operator.domain.lifecycle import FINALIZER


@kopf.on.event(GROUP, VERSION, "dpqueries")
async def dpquery_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") == "DELETED":
        memo.reconciler.forget(body["metadata"]["uid"])
        return
    memo.registry.observe(dict(body))
    phase = phase_of(dict(body))
    settled = phase is not None and phase.terminal and FINALIZER not in (body["metadata"].get("finalizers") or [])
    if not settled:
        memo.reconciler.reconcile_soon(body["metadata"]["namespace"], body["metadata"]["name"], dict(body))
