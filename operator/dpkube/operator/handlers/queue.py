"""Queue events: remember the queue's settings; unlocking or growing a queue wakes its waiting queries."""

from __future__ import annotations

from typing import Any

import kopf

from dpkube.models.crd import GROUP, VERSION


@kopf.on.event(GROUP, VERSION, "queues")
async def queue_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if body["metadata"].get("namespace") != memo.config.system_namespace:
        return
    name = body["metadata"]["name"]
    if event.get("type") == "DELETED":
        memo.scheduler.queues.pop(name, None)
        memo.reconciler.admission.forget_queue(name)
    else:
        memo.scheduler.queues[name] = dict(body.get("spec") or {})
        memo.reconciler.admission.observe_queue(dict(body))
    memo.registry.dirty_queues.add(name)
