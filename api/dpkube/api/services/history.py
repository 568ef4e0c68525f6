"""`/get_previous_queries` from the DPQuery objects themselves: the archive is the cluster's own record.

A query counts once it Succeeded in query mode; records follow submission order. Queries submitted
with kubectl (no Lomas body kept) are listed with a body rebuilt from their spec.

The facade's watch-fed view of DPQueries (feed.py) keeps of each such query only its archive entry
(`archived`: texts and numbers, no spec, conditions or managedFields), filed under (user, dataset), so a
read costs the caller's own records whatever else is stored. A query this replica saw end is in the view
before its answer leaves (queries.py puts it there), so the caller's next read lists it. While the view
is not synced, the caller's queries are listed from the API server with label and field selectors.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel

from dpkube.api.services.queries import (
    CLIENT_INPUT_ANNOTATION,
    owner_selector,
)
from dpkube.api.services.retry import retrying
from dpkube.k8s.client import KubeClient
from dpkube.k8s.informer import Informer
from dpkube.k8s.results import read_published
from dpkube.models.dpquery import PAYLOAD_FIELD, Mode, Phase, submitted_at
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import PAYLOAD_TYPES, Library

log = logging.getLogger(__name__)

HISTORY_INDEX = "archive-by-owner"


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """What the Lomas archive record of one succeeded query needs, as compact as it can be kept."""

    name: str
    user: str
    dataset: str
    library: Library
    client_input: str
    """The Lomas body, JSON."""
    timestamp: float
    spent_epsilon: float
    spent_delta: float
    result: str | None
    """The inline result, JSON; None when it is kept in ConfigMaps (`result_ref`)."""
    result_ref: dict[str, Any] | None


def _client_input(query: dict[str, Any], library: Library) -> str:
    raw = (query["metadata"].get("annotations") or {}).get(CLIENT_INPUT_ANNOTATION)
    if raw:
        return str(raw)
    payload_key = to_camel(PAYLOAD_FIELD[library])
    payload = PAYLOAD_TYPES[library].model_validate(query["spec"].get(payload_key) or {})
    return json.dumps({"dataset_name": query["spec"]["dataset"], **payload.model_dump(mode="json")})


def archived(query: dict[str, Any]) -> dict[str, Any] | None:
    """What the facade's view keeps of a DPQuery that succeeded in query mode (None for any other)."""
    spec, status = query.get("spec") or {}, query.get("status") or {}
    if status.get("phase") != Phase.SUCCEEDED.value or spec.get("mode", Mode.QUERY.value) != Mode.QUERY.value:
        return None
    meta = query["metadata"]
    spent = status.get("spent") or {}
    ref = status.get("resultRef")
    try:
        library = Library(spec["library"])
        entry = ArchiveEntry(
            name=meta["name"], user=sys.intern(spec["user"]), dataset=sys.intern(spec["dataset"]),
            library=library, client_input=_client_input(query, library), timestamp=submitted_at(meta),
            spent_epsilon=float(spent.get("epsilon", 0.0)), spent_delta=float(spent.get("delta", 0.0)),
            result=None if ref else json.dumps(status.get("result"), separators=(",", ":")), result_ref=ref or None,
        )
    except (KeyError, TypeError, ValueError) as exc:  # the API server validated it: never let one break the feed
        log.warning("DPQuery %s has no archive record: %s", meta.get("name"), exc)
        return None
    return {"metadata": {"name": meta["name"], "resourceVersion": meta.get("resourceVersion", "0")},
            "archive": entry}


def archive_key(kept: dict[str, Any]) -> tuple[str, str] | None:
    """The index of archive entries by (user, dataset)."""
    entry = kept.get("archive")
    return (entry.user, entry.dataset) if entry is not None else None


class History:
    """The successful private queries of a user on a dataset, as Lomas archive records."""

    def __init__(self, client: KubeClient, namespace: str, view: Informer | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.view = view

    async def previous_queries(self, user: str, dataset: str) -> list[dict[str, Any]]:
        if self.view is not None and self.view.synced:
            entries = [kept["archive"] for kept in self.view.indexed(HISTORY_INDEX, (user, dataset)).values()]
        else:
            entries = await self._listed(user, dataset)
        entries.sort(key=lambda e: (e.timestamp, e.name))
        return [await self._record(entry) for entry in entries]

    async def _listed(self, user: str, dataset: str) -> list[ArchiveEntry]:
        items = await retrying(lambda: self.client.list_all(
            DPQUERY.api_path(self.namespace), label_selector=owner_selector(user, dataset),
            field_selector=f"status.phase={Phase.SUCCEEDED.value},spec.mode={Mode.QUERY.value}"))
        entries = [kept["archive"] for item in items if (kept := archived(item)) is not None]
        return [e for e in entries if (e.user, e.dataset) == (user, dataset)]

    async def _record(self, entry: ArchiveEntry) -> dict[str, Any]:
        if entry.result_ref is not None:
            response = await read_published(self.client, {"metadata": {"namespace": self.namespace},
                                                          "status": {"resultRef": entry.result_ref}})
        else:
            response = json.loads(entry.result) if entry.result is not None else None
        return {
            "user_name": entry.user,
            "dataset_name": entry.dataset,
            "dp_librairy": entry.library.lomas_name,
            "client_input": json.loads(entry.client_input),
            "response": {
                "requested_by": entry.user,
                "query_response": response,
                "spent_epsilon": entry.spent_epsilon,
                "spent_delta": entry.spent_delta,
            },
            "timestamp": entry.timestamp,
        }
