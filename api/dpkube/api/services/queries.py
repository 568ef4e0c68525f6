"""Lomas queries as DPQuery objects: create one for the caller, wait for its end, answer as Lomas does.

The facade decides nothing about budgets: the operator admits, runs, charges and writes the outcome
into the status; the facade maps that outcome (phase and condition reason) to Lomas' answers. The end of
a query is seen on the facade's one feed of DPQueries (endings.py), never on a watch of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dpkube.api.errors import (
    ApiException,
    ExternalLibraryException,
    InternalServerException,
    InvalidQueryException,
    UnauthorizedAccessException,
    UnknownQuery,
)
from dpkube.api.services.budgets import BudgetView
from dpkube.api.services.datasets import Datasets, unknown_dataset
from dpkube.api.services.endings import Endings
from dpkube.api.services.lomas_queue import LomasQueue
from dpkube.api.services.retry import retrying
from dpkube.api.wire import WireModel, payload_of
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.k8s.results import read_published
from dpkube.models.conditions import ConditionType, Reason
from dpkube.models.cost import ZERO, Cost
from dpkube.models.crd import API_VERSION
from dpkube.models.dataset import dataset_object_name
from dpkube.models.dpquery import (
    PAYLOAD_FIELD,
    RELEASE_FINALIZER,
    SUBMITTED_AT_ANNOTATION,
    DPQuerySpec,
    DPQueryStatus,
    DummySpec,
    Mode,
    Phase,
)
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library
from dpkube.models.progress import QueryProgress

if TYPE_CHECKING:
    from dpkube.api.services.quotas import InFlight

log = logging.getLogger(__name__)

USER_LABEL = "dpkube.io/user-hash"
"""sha256 of the user name (label values cannot hold every user name); spec.user is the truth."""
DATASET_LABEL = "dpkube.io/dataset"
"""The dataset's object name (PENGUIN -> penguin); spec.dataset is the truth."""
ORIGIN_LABEL = "dpkube.io/origin"
"""`lomas` on DPQueries this facade created."""
CLIENT_INPUT_ANNOTATION = "dpkube.io/client-input"
"""The validated Lomas body, JSON, as /get_previous_queries returns it."""

STATUS_CONDITION_ERRORS: dict[str, Callable[[str, Library], ApiException]] = {
    Reason.INSUFFICIENT_BUDGET: lambda m, _: InvalidQueryException(m),
    Reason.EXPERIMENT_BUDGET_EXCEEDED: lambda m, _: InvalidQueryException(m),
    Reason.NOT_EXPRESSIBLE_IN_ZCDP: lambda m, _: InvalidQueryException(m),
    Reason.NO_BUDGET_GRANT: lambda m, _: UnauthorizedAccessException(m),
    Reason.USER_NOT_ALLOWED: lambda m, _: UnauthorizedAccessException(m),
    Reason.INVALID_QUERY: lambda m, _: InvalidQueryException(m),
    Reason.LIBRARY_ERROR: lambda m, lib: ExternalLibraryException(m, lib.lomas_name),
    Reason.FAILED_ON_PRIVATE_DATA: lambda m, lib: ExternalLibraryException(m, lib.lomas_name),
    Reason.TIMED_OUT: lambda m, _: InvalidQueryException(f"The query was stopped: {m}."),
}
"""How a refusal written by the operator reads on the wire, by the Complete condition's reason."""


def user_hash(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()[:40]


def owner_selector(user: str, dataset: str) -> str:
    """The label selector of the caller's DPQueries on one dataset."""
    return f"{USER_LABEL}={user_hash(user)},{DATASET_LABEL}={dataset_object_name(dataset)[:63].strip('-')}"


def complete_reason(status: DPQueryStatus) -> str:
    return next((c.reason for c in status.conditions if c.type == ConditionType.COMPLETE), "")


@dataclass(frozen=True)
class Outcome:
    """A query that ended well: its released result, what it was charged and what it costs."""

    name: str
    mode: Mode
    response: Any
    spent: Cost
    cost: Cost


class Queries:
    """Creates DPQueries for callers and follows them to their end."""

    def __init__(self, client: KubeClient, namespace: str, datasets: Datasets, budgets: BudgetView,
                 wait_seconds: float, on_end: Callable[[Library, Mode, str, str], None] | None = None,
                 in_flight: InFlight | None = None, endings: Endings | None = None,
                 queue: LomasQueue | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.datasets = datasets
        self.budgets = budgets
        self.wait_seconds = wait_seconds
        self.on_end = on_end
        self.in_flight = in_flight
        self.endings = endings or Endings(client, namespace, None)
        self.queue = queue

    async def run(self, user: str, library: Library, mode: Mode, body: WireModel) -> Outcome:
        """Submit the query (`submission`'s checks first) and wait for its outcome."""
        manifest = await self.submission(user, library, mode, body)
        dataset = manifest["spec"]["dataset"]
        with self.endings.expect(manifest["metadata"]["name"]):
            created = await self._create(user, manifest)
            if mode == Mode.QUERY:
                self.budgets.mark_stale(user, dataset)
            try:
                final = await self.endings.wait(created, self.wait_seconds)
            finally:
                if mode == Mode.QUERY:
                    self.budgets.mark_stale(user, dataset)
        if self.on_end is not None:
            status = DPQueryStatus.model_validate(final.get("status") or {})
            self.on_end(library, mode, status.phase.value, complete_reason(status))
        return await self.outcome(final)

    async def start(self, user: str, library: Library, mode: Mode, body: WireModel) -> QueryProgress:
        """Submit the query (`submission`'s checks first) and answer at once: the caller follows it by name."""
        manifest = await self.submission(user, library, mode, body)
        created = await self._create(user, manifest)
        if mode == Mode.QUERY:
            self.budgets.mark_stale(user, manifest["spec"]["dataset"])
        return QueryProgress.of(created)

    async def follow(self, user: str, name: str) -> Outcome | QueryProgress:
        """The caller's query `name`: its progress while it runs, its outcome (or refusal) once it has ended.
        Another user's query, or one this facade did not create, is not found."""
        try:
            query = await retrying(lambda: self.client.get(DPQUERY.api_path(self.namespace, name)))
        except NotFound:
            raise UnknownQuery(name) from None
        spec = query.get("spec") or {}
        if spec.get("user") != user or (query["metadata"].get("labels") or {}).get(ORIGIN_LABEL) != "lomas":
            raise UnknownQuery(name)
        progress = QueryProgress.of(query)
        if not progress.phase.terminal:
            return progress
        if spec.get("mode", Mode.QUERY.value) == Mode.QUERY.value:
            self.budgets.mark_stale(user, spec["dataset"])
        return await self.outcome(query)

    async def submission(self, user: str, library: Library, mode: Mode, body: WireModel) -> dict[str, Any]:
        """The caller's DPQuery, once the dataset (400) and access (403) are checked; through the Lomas queue
        when it takes the query's library."""
        dataset = body.dataset_name  # type: ignore[attr-defined]
        await self.datasets.get(dataset)
        ledger = await self.budgets.for_access(user, dataset)
        if mode == Mode.QUERY and not ledger.may_query:
            raise UnauthorizedAccessException(f"{user} is not allowed to query {dataset}.")
        queue = await self.queue.for_library(library) if self.queue is not None else None
        return self.manifest(user, library, mode, body, queue)

    async def _create(self, user: str, manifest: dict[str, Any]) -> dict[str, Any]:
        if self.in_flight is None:
            return await retrying(lambda: self.client.create(DPQUERY.api_path(self.namespace), manifest))
        async with self.in_flight.slot(user) as slot:
            created = await retrying(lambda: self.client.create(DPQUERY.api_path(self.namespace), manifest))
            slot.created(created)
        return created

    def manifest(self, user: str, library: Library, mode: Mode, body: WireModel,
                 queue: str | None = None) -> dict[str, Any]:
        """The DPQuery of a Lomas request, in the caller's name (through `queue`, if any); 400 when the
        platform's limits refuse it."""
        values = body.model_dump()
        dataset = values["dataset_name"]
        dummy = mode == Mode.DUMMY
        try:
            spec = DPQuerySpec(
                user=user, dataset=dataset, library=library, mode=mode, queue=queue,
                dummy=DummySpec(rows=values["dummy_nb_rows"], seed=values["dummy_seed"]) if dummy else None,
                **{PAYLOAD_FIELD[library]: payload_of(library, body)},
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidQueryException(f"invalid query: {where}: {first['msg']}") from None
        return {
            "apiVersion": API_VERSION,
            "kind": DPQUERY.kind,
            "metadata": {
                "name": f"lomas-{mode.value}-{uuid.uuid4().hex[:16]}",
                "namespace": self.namespace,
                # Set at creation, so the operator need not add it before it reserves the query's cost.
                "finalizers": [RELEASE_FINALIZER],
                "labels": {
                    USER_LABEL: user_hash(user),
                    DATASET_LABEL: dataset_object_name(dataset)[:63].strip("-"),
                    ORIGIN_LABEL: "lomas",
                },
                "annotations": {
                    CLIENT_INPUT_ANNOTATION: json.dumps(values, separators=(",", ":")),
                    SUBMITTED_AT_ANNOTATION: repr(time.time()),
                },
            },
            "spec": spec.to_kube(),
        }

    async def outcome(self, query: dict[str, Any]) -> Outcome:
        """What an ended query answers: its released result, or the Lomas error of its refusal."""
        status = DPQueryStatus.model_validate(query.get("status") or {})
        library, mode = Library(query["spec"]["library"]), Mode(query["spec"].get("mode", Mode.QUERY.value))
        phase = status.phase
        reason = complete_reason(status)
        if phase != Phase.SUCCEEDED:
            message = status.message or phase.value
            if reason == Reason.DATASET_NOT_FOUND:
                raise unknown_dataset(query["spec"]["dataset"])
            if reason in STATUS_CONDITION_ERRORS:
                raise STATUS_CONDITION_ERRORS[reason](message, library)
            raise InternalServerException(f"query {query['metadata']['name']} ended {phase.value}: {message}")
        return Outcome(
            name=query["metadata"]["name"],
            mode=mode,
            response=await read_published(self.client, query),
            spent=status.spent or ZERO,
            cost=status.cost or ZERO,
        )
