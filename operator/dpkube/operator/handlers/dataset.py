"""Dataset events: validate the metadata and say in the status whether the dataset can be queried."""

from __future__ import annotations

from typing import Any

import kopf

from dpkube.k8s.client import NotFound
from dpkube.models.crd import GROUP, VERSION
from dpkube.models.kinds import DATASET
from dpkube.operator.datasets import dataset_status


@kopf.on.event(GROUP, VERSION, "datasets")
async def dataset_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") == "DELETED" or body["metadata"].get("namespace") != memo.config.system_namespace:
        return
    status = dataset_status(dict(body))
    if {k: (body.get("status") or {}).get(k) for k in status} == status:
        return
    try:
        await memo.client.patch(DATASET.api_path(body["metadata"]["namespace"], body["metadata"]["name"]) + "/status",
                                {"status": status})
    except NotFound:
        pass
