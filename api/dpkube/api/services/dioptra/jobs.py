"""Dioptra jobs are DPQueries: a submitted workflow entry point becomes one query, its status one phase.

The job id is a UUID4, as Dioptra's, and the DPQuery is named after it (`dioptra-<job id>`), so a lookup
reads one object. What Dioptra echoes back (kwargs, timeout, dependency, workflow location) is kept in
annotations, and the uploaded archive in a ConfigMap owned by the DPQuery, so `workflowUri` points at
what actually ran. A user sees their own jobs only (another user's job id is a 404, as an unknown one
is); admins see every job.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dpkube.api.auth import Identity
from dpkube.api.errors import DioptraNotFound, DioptraTooLarge
from dpkube.api.services.compute import Compute
from dpkube.api.services.dioptra import messages
from dpkube.api.services.dioptra.archives import DEFAULT_LIMITS, Limits
from dpkube.api.services.dioptra.catalog import Catalog
from dpkube.api.services.dioptra.forms import Form
from dpkube.api.services.dioptra.kwargs import KwargsError, parse_kwargs, parse_timeout
from dpkube.api.services.dioptra.queues import Queues
from dpkube.api.services.dioptra.records import (
    CREATED_ON,
    EXPERIMENT_ID_LABEL,
    ORIGIN_LABEL,
    QUEUE_ID_LABEL,
    naive,
    now,
    object_id,
)
from dpkube.api.services.dioptra.workflows import ResolvedQuery, workflow_query
from dpkube.api.services.queries import USER_LABEL, user_hash
from dpkube.api.services.quotas import InFlight
from dpkube.api.services.retry import retrying
from dpkube.engine.errors import PayloadRejected
from dpkube.k8s.client import ApiError, KubeClient, NotFound, core_path
from dpkube.k8s.plugins import package_config_map
from dpkube.models.conditions import Reason
from dpkube.models.crd import API_VERSION
from dpkube.models.dpquery import PAYLOAD_FIELD, DPQuerySpec, Phase
from dpkube.models.kinds import DPQUERY

ENTRY_POINT = "dpkube.io/dioptra-entry-point"
KWARGS = "dpkube.io/dioptra-entry-point-kwargs"
PARAMETERS = "dpkube.io/dioptra-parameters"
TIMEOUT = "dpkube.io/dioptra-timeout"
WORKFLOW_URI = "dpkube.io/dioptra-workflow-uri"
DEPENDS_ON = "dpkube.io/dioptra-depends-on"
WORKFLOW_LABEL = "dpkube.io/dioptra-workflow"
REQUIRED_FIELDS = ("experimentName", "queue", "entryPoint")
NAME_PREFIX = "dioptra-"
_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")

STATUS: dict[Phase, str] = {
    Phase.PENDING: "queued",
    Phase.ADMITTED: "queued",
    Phase.RUNNING: "started",
    Phase.SUCCEEDED: "finished",
    Phase.FAILED: "failed",
    Phase.REJECTED: "failed",
    Phase.TIMED_OUT: "failed",
    Phase.CANCELLED: "failed",
}
"""Dioptra's job status of each phase; a Pending query waiting for its dependency is `deferred`."""


def job_status(query: dict[str, Any]) -> str:
    status = query.get("status") or {}
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    waiting = any(c.get("reason") == Reason.WAITING_FOR_DEPENDENCY for c in status.get("conditions") or [])
    return "deferred" if phase == Phase.PENDING and waiting else STATUS[phase]


def last_modified(query: dict[str, Any]) -> str:
    """The latest write Dioptra would have made: submission, then every transition of the status."""
    status = query.get("status") or {}
    stamps = [c.get("lastTransitionTime") for c in status.get("conditions") or []]
    stamps += [status.get(key) for key in ("admittedAt", "startTime", "completionTime")]
    latest = max((naive(s) for s in stamps if s), key=dt.datetime.fromisoformat, default=None)
    created = (query["metadata"].get("annotations") or {}).get(CREATED_ON) or naive(
        query["metadata"]["creationTimestamp"])
    if latest is None or dt.datetime.fromisoformat(latest) < dt.datetime.fromisoformat(created):
        return created
    return latest


def query_name(job_id: str) -> str:
    """The DPQuery of a job id."""
    return f"{NAME_PREFIX}{job_id}"


def job_id(query: dict[str, Any]) -> str:
    """The job id a DPQuery is named after."""
    return str(query["metadata"]["name"]).removeprefix(NAME_PREFIX)


def wire(query: dict[str, Any]) -> dict[str, Any]:
    """The 12 keys of a Dioptra Job."""
    meta = query["metadata"]
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    return {
        "jobId": job_id(query),
        "mlflowRunId": None,
        "experimentId": int(labels.get(EXPERIMENT_ID_LABEL, "0")),
        "queueId": int(labels.get(QUEUE_ID_LABEL, "0")),
        "createdOn": notes.get(CREATED_ON) or naive(meta["creationTimestamp"]),
        "lastModified": last_modified(query),
        "timeout": notes.get(TIMEOUT, ""),
        "workflowUri": notes.get(WORKFLOW_URI, ""),
        "entryPoint": notes.get(ENTRY_POINT, ""),
        "entryPointKwargs": notes.get(KWARGS),
        "dependsOn": notes.get(DEPENDS_ON),
        "status": job_status(query),
    }


def stored_file_name(filename: str) -> str:
    """The upload's base name as a ConfigMap key (and the tail of workflowUri)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return _KEY_UNSAFE.sub("_", base)[:200].strip(".") or "workflow.tar.gz"


@dataclass(frozen=True)
class Submission:
    """A decoded, checked job form: everything the DPQuery and its workflow ConfigMap need."""

    experiment: dict[str, Any]
    queue: dict[str, Any]
    spec: dict[str, Any]
    annotations: dict[str, str]
    archive_name: str
    archive: bytes


def visible(query: dict[str, Any], caller: Identity) -> bool:
    """A Dioptra job of the caller's own (any job, for an admin)."""
    labels = query["metadata"].get("labels") or {}
    return labels.get(ORIGIN_LABEL) == "dioptra" and (
        caller.admin or (query.get("spec") or {}).get("user") == caller.user)


class Jobs:
    """Submission (checked in Dioptra's order, then ours), listing and lookup of Dioptra jobs."""

    def __init__(self, client: KubeClient, namespace: str, experiments: Catalog, queues: Queues,
                 compute: Compute, in_flight: InFlight | None = None, limits: Limits = DEFAULT_LIMITS,
                 system_namespace: str = "dpkube-system") -> None:
        self.client = client
        self.namespace = namespace
        self.system_namespace = system_namespace
        self.experiments = experiments
        self.queues = queues
        self.compute = compute
        self.in_flight = in_flight
        self.limits = limits

    async def all(self, caller: Identity) -> list[dict[str, Any]]:
        """The caller's jobs (every job, for an admin), oldest first."""
        selector = f"{ORIGIN_LABEL}=dioptra"
        if not caller.admin:
            selector += f",{USER_LABEL}={user_hash(caller.user)}"
        items = await retrying(lambda: self.client.list_all(DPQUERY.api_path(self.namespace),
                                                            label_selector=selector))
        return sorted((wire(item) for item in items if visible(item, caller)), key=lambda job: job["createdOn"])

    async def query(self, caller: Identity, job_id: str) -> dict[str, Any]:
        """The DPQuery of a job id, read by name; the job 404 when it is unknown or not the caller's."""
        try:
            if str(uuid.UUID(job_id)) != job_id:
                raise ValueError(job_id)
        except ValueError:
            raise messages.not_found("job") from None
        try:
            found = await retrying(lambda: self.client.get(DPQUERY.api_path(self.namespace, query_name(job_id))))
        except NotFound:
            raise messages.not_found("job") from None
        if not visible(found, caller):
            raise messages.not_found("job")
        return found

    async def get(self, caller: Identity, job_id: str) -> dict[str, Any]:
        return wire(await self.query(caller, job_id))

    async def submit(self, caller: Identity, form: Form) -> dict[str, Any]:
        submission = await self._check(caller, form)
        new_id = str(uuid.uuid4())
        name, workflow = query_name(new_id), f"wf-{new_id}"
        manifest = {
            "apiVersion": API_VERSION, "kind": DPQUERY.kind,
            "metadata": {
                "name": name, "namespace": self.namespace,
                "labels": {ORIGIN_LABEL: "dioptra", WORKFLOW_LABEL: workflow, USER_LABEL: user_hash(caller.user),
                           EXPERIMENT_ID_LABEL: str(object_id(submission.experiment)),
                           QUEUE_ID_LABEL: str(object_id(submission.queue))},
                "annotations": submission.annotations | {
                    WORKFLOW_URI: f"configmap://{self.namespace}/{workflow}/{submission.archive_name}"},
            },
            "spec": submission.spec,
        }
        created = await self._create(caller.user, workflow, submission, manifest)
        owner = {"apiVersion": API_VERSION, "kind": DPQUERY.kind, "name": name, "uid": created["metadata"]["uid"]}
        await retrying(lambda: self.client.patch(core_path("configmaps", self.namespace, workflow),
                                                 {"metadata": {"ownerReferences": [owner]}}))
        return wire(created)

    async def _create(self, user: str, workflow: str, submission: Submission,
                      manifest: dict[str, Any]) -> dict[str, Any]:
        """Store the workflow, then create the DPQuery within the user's unfinished-query limit (429)."""
        if self.in_flight is None:
            return await self._store_and_create(workflow, submission, manifest)
        async with self.in_flight.slot(user) as slot:
            created = await self._store_and_create(workflow, submission, manifest)
            slot.created(created)
        return created

    async def _store_and_create(self, workflow: str, submission: Submission,
                                manifest: dict[str, Any]) -> dict[str, Any]:
        await self._store(workflow, submission)
        try:
            return await retrying(lambda: self.client.create(DPQUERY.api_path(self.namespace), manifest))
        except ApiError:
            await self.client.delete(core_path("configmaps", self.namespace, workflow))
            raise

    async def _check(self, caller: Identity, form: Form) -> Submission:
        """Dioptra's order (experiment 404, queue 404, lock 403), then the form, archive and parameters (400)."""
        experiment = await self.experiments.by_name(form.fields.get("experimentName", ""))
        queue = await self.queues.by_name(form.fields.get("queue", ""))
        if (queue.get("spec") or {}).get("locked"):
            raise messages.queue_locked()
        missing = [key for key in REQUIRED_FIELDS if not form.fields.get(key)]
        if "workflow" not in form.files:
            missing.append("workflow")
        if missing:
            raise messages.invalid_job_form(f"missing: {', '.join(missing)}")
        filename, archive = form.files["workflow"]
        if len(archive) > self.limits.max_upload:
            raise DioptraTooLarge(f"Payload Too Large - The workflow archive is larger than "
                                  f"{self.limits.max_upload} bytes.")
        raw_kwargs = form.fields.get("entryPointKwargs") or None
        try:
            timeout, duration = parse_timeout(form.fields.get("timeout"))
            kwargs = parse_kwargs(raw_kwargs)
            resolved: ResolvedQuery = await self.compute.run(caller.user, workflow_query, archive, self.limits,
                                                             form.fields["entryPoint"], kwargs)
        except KwargsError as exc:
            raise messages.invalid_job_form(str(exc)) from None
        except PayloadRejected as exc:
            raise messages.invalid_job_form(exc.message) from None
        for plugin in resolved.plugins:
            await self._plugin_exists(plugin)
        depends_on = form.fields.get("dependsOn") or None
        dependency = await self._dependency(caller, depends_on) if depends_on else None
        try:
            spec = DPQuerySpec(
                user=caller.user, dataset=resolved.dataset, library=resolved.library,
                experiment=experiment["metadata"]["name"], queue=queue["metadata"]["name"],
                depends_on=[dependency] if dependency else [], timeout=duration, plugins=resolved.plugins,
                **{PAYLOAD_FIELD[resolved.library]: resolved.payload},
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise messages.invalid_job_form(
                f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        annotations = {CREATED_ON: now(), ENTRY_POINT: form.fields["entryPoint"], TIMEOUT: timeout,
                       PARAMETERS: json.dumps(resolved.parameters, separators=(",", ":"))}
        if raw_kwargs is not None:
            annotations[KWARGS] = raw_kwargs
        if depends_on:
            annotations[DEPENDS_ON] = depends_on
        return Submission(experiment, queue, spec.to_kube(), annotations, stored_file_name(filename), archive)

    async def _plugin_exists(self, name: str) -> None:
        """A workflow may only name custom packages an admin uploaded."""
        try:
            await self.client.get(core_path("configmaps", self.system_namespace, package_config_map(name)))
        except NotFound:
            raise messages.invalid_job_form(f"unknown task plugin package {name!r}") from None

    async def _dependency(self, caller: Identity, job_id: str) -> str:
        """The DPQuery name of the job a submission depends on; an unknown one (or another user's) is a form
        error."""
        try:
            return (await self.query(caller, job_id))["metadata"]["name"]
        except DioptraNotFound:
            raise messages.invalid_job_form(f"dependsOn {job_id!r} is not a job") from None

    async def _store(self, workflow: str, submission: Submission) -> None:
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": workflow, "namespace": self.namespace,
                         "labels": {ORIGIN_LABEL: "dioptra", WORKFLOW_LABEL: workflow}},
            "binaryData": {submission.archive_name: base64.b64encode(submission.archive).decode()},
        }
        try:
            await retrying(lambda: self.client.create(core_path("configmaps", self.namespace), body))
        except ApiError as exc:
            raise messages.store_failed(f"{exc.status} {exc.reason}") from None
