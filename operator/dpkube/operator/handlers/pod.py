"""Query pod events: a pod that started or ended moves its query on."""

from __future__ import annotations

from typing import Any

import kopf

from dpkube.k8s.pods import QUERY_UID_LABEL


@kopf.on.event("", "v1", "pods", labels={QUERY_UID_LABEL: kopf.PRESENT})
async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = next((o for o in body["metadata"].get("ownerReferences") or [] if o.get("kind") == "DPQuery"), None)
    if owner is None:
        return
    phase = (body.get("status") or {}).get("phase")
    gone = event.get("type") == "DELETED"
    if gone or phase in ("Running", "Succeeded", "Failed"):
        await memo.reconciler.pod_changed(body["metadata"]["namespace"], owner["name"], owner["uid"], dict(body), gone)
