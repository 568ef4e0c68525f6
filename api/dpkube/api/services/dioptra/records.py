"""How Dioptra's names, ids and times are kept on our objects: label and annotation keys, slugs, timestamps.

Object names are derived from a hash of the Dioptra name, since Dioptra names may hold `_` and capitals;
the name itself is kept in `spec.displayName`, the integer id in a label (so it can be selected on).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

ID_LABEL = "dpkube.io/dioptra-id"
"""The integer id of an Experiment or Queue."""
ORIGIN_LABEL = "dpkube.io/origin"
EXPERIMENT_ID_LABEL = "dpkube.io/dioptra-experiment-id"
QUEUE_ID_LABEL = "dpkube.io/dioptra-queue-id"
CREATED_ON = "dpkube.io/dioptra-created-on"
LAST_MODIFIED = "dpkube.io/dioptra-last-modified"
MAX_NAME = 253


def slugify(name: str) -> str:
    """Dioptra's slug: lowercase, trimmed, spaces to `-` (underscores stay)."""
    return name.strip().lower().replace(" ", "-")


def object_name(prefix: str, display_name: str) -> str:
    """A valid, stable Kubernetes name for a Dioptra name: `prefix` + 16 hex of its sha256."""
    return f"{prefix}{hashlib.sha256(display_name.encode()).hexdigest()[:16]}"


def now() -> str:
    """Dioptra's timestamp: naive ISO-8601 with microseconds (omitted when 0), in UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()


def naive(kube_time: str) -> str:
    """A Kubernetes RFC 3339 time as a Dioptra timestamp (UTC, no zone)."""
    return dt.datetime.fromisoformat(kube_time).astimezone(dt.UTC).replace(tzinfo=None).isoformat()


def times(obj: dict[str, Any]) -> tuple[str, str]:
    """(createdOn, lastModified) from the annotations, else the creation timestamp."""
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    created = annotations.get(CREATED_ON) or naive(meta["creationTimestamp"])
    return created, annotations.get(LAST_MODIFIED) or created


def object_id(obj: dict[str, Any]) -> int | None:
    value = (obj["metadata"].get("labels") or {}).get(ID_LABEL, "")
    return int(value) if value.isdigit() else None


def named(obj: dict[str, Any], id_key: str) -> dict[str, Any]:
    """The wire form of an Experiment or Queue: `{<id_key>, name, createdOn, lastModified}`."""
    created, modified = times(obj)
    name = (obj.get("spec") or {}).get("displayName") or obj["metadata"]["name"]
    return {id_key: object_id(obj), "name": name, "createdOn": created, "lastModified": modified}
