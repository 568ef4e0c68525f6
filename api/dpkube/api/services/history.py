"""`/get_previous_queries` from the DPQuery objects themselves: the archive is the cluster's own record.

A query counts once it Succeeded in query mode; records follow submission order. Queries submitted
with kubectl (no Lomas body kept) are listed with a body rebuilt from their spec.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic.alias_generators import to_camel

from dpkube.api.services.queries import (
    CLIENT_INPUT_ANNOTATION,
    SUBMITTED_AT_ANNOTATION,
    owner_selector,
)
from dpkube.api.services.retry import retrying
from dpkube.k8s.client import KubeClient
from dpkube.k8s.results import read_published
from dpkube.models.cost import ZERO
from dpkube.models.dpquery import PAYLOAD_FIELD, DPQueryStatus, Mode, Phase, phase_of
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import PAYLOAD_TYPES, Library


def _timestamp(query: dict[str, Any]) -> float:
    annotations = query["metadata"].get("annotations") or {}
    try:
        return float(annotations[SUBMITTED_AT_ANNOTATION])
    except (KeyError, ValueError):
        created = query["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        return dt.datetime.fromisoformat(created).timestamp()


def _client_input(query: dict[str, Any], library: Library) -> dict[str, Any]:
    raw = (query["metadata"].get("annotations") or {}).get(CLIENT_INPUT_ANNOTATION)
    if raw:
        return json.loads(raw)
    payload_key = to_camel(PAYLOAD_FIELD[library])
    payload = PAYLOAD_TYPES[library].model_validate(query["spec"].get(payload_key) or {})
    return {"dataset_name": query["spec"]["dataset"], **payload.model_dump(mode="json")}


class History:
    """The successful private queries of a user on a dataset, as Lomas archive records."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    async def previous_queries(self, user: str, dataset: str) -> list[dict[str, Any]]:
        items = await retrying(lambda: self.client.list_all(
            DPQUERY.api_path(self.namespace), label_selector=owner_selector(user, dataset),
            field_selector=f"status.phase={Phase.SUCCEEDED.value},spec.mode={Mode.QUERY.value}"))
        done = [
            q for q in items
            if q["spec"].get("user") == user and q["spec"].get("dataset") == dataset
            and q["spec"].get("mode", Mode.QUERY.value) == Mode.QUERY.value
            and phase_of(q) == Phase.SUCCEEDED
        ]
        done.sort(key=lambda q: (_timestamp(q), q["metadata"]["name"]))
        return [await self._record(q, user) for q in done]

    async def _record(self, query: dict[str, Any], user: str) -> dict[str, Any]:
        library = Library(query["spec"]["library"])
        spent = DPQueryStatus.model_validate(query.get("status") or {}).spent or ZERO
        return {
            "user_name": user,
            "dataset_name": query["spec"]["dataset"],
            "dp_librairy": library.lomas_name,
            "client_input": _client_input(query, library),
            "response": {
                "requested_by": user,
                "query_response": await read_published(self.client, query),
                "spent_epsilon": spent.epsilon,
                "spent_delta": spent.delta,
            },
            "timestamp": _timestamp(query),
        }
