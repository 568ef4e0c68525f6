"""Experiment events: keep the cascade finalizer, cascade on deletion, keep counts current."""

from __future__ import annotations

from typing import Any

import kopf

from dpkube.models.crd import GROUP, VERSION


@kopf.on.event(GROUP, VERSION, "experiments")
async def experiment_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") == "DELETED":
        return
    await memo.cascade.observe(dict(body))
    memo.registry.dirty_experiments.add((body["metadata"]["namespace"], body["metadata"]["name"]))
