"""The DPQuery reconciler: level-based, one query at a time, every step idempotent and keyed by uid.

Money rules (non-negotiable):
- admission reserves the library's own cost with a conditioned update before the query is Admitted;
- a result is charged (reservation -> spent) before it is written where the user can read it;
- every other terminal phase returns the reservation, because nothing was released;
- the pod's name is derived from the uid, so no restart or race starts a query twice.
The reconciler re-reads the query from the API server under a per-query lock, so watch events that
arrive late, collapsed or twice change nothing (kopf#698).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dpkube.budget import ledger as L
from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import EngineError, ExternalLibraryError
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.k8s.plugins import package_config_map, package_copy
from dpkube.k8s.results import delete_result, read_result
from dpkube.models.conditions import Reason
from dpkube.models.dataset import DatasetSpec, dataset_object_name
from dpkube.models.dpquery import DPQuerySpec, Mode, Phase
from dpkube.models.kinds import DATASET, DPQUERY, EXPERIMENT, QUEUE
from dpkube.models.metadata import Metadata
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import ErrorKind, RunnerOutput
from dpkube.operator.domain import admission
from dpkube.operator.domain import status as S
from dpkube.operator.domain.durations import parse_duration
from dpkube.operator.events import EventRecorder
from dpkube.operator.pods import (
    QUERY_UID_LABEL,
    credentials_copy_name,
    pod_name,
    query_pod,
    runner_access,
    runner_input,
)
from dpkube.operator.registry import Registry
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import WarmPools

log = logging.getLogger(__name__)

FINALIZER = "dpkube.io/release-budget"
MAX_QUEUE_RETRIES = 20
FAILURE_REASONS = {
    ErrorKind.INVALID_QUERY: Reason.INVALID_QUERY,
    ErrorKind.PAYLOAD_REJECTED: Reason.INVALID_QUERY,
    ErrorKind.EXTERNAL_LIBRARY: Reason.LIBRARY_ERROR,
}


@dataclass(frozen=True)
class Known:
    """What admission just read, handed to the pod's creation so it is not read twice on the hot path."""

    dataset: DatasetSpec | None
    metadata: Metadata | None
    queue: QueueSpec | None


class Outcome(Exception):
    """Ends a reconcile early with a terminal or waiting phase (raised by the checks)."""

    def __init__(self, phase: Phase, reason: str, message: str):
        super().__init__(message)
        self.phase, self.reason, self.message = phase, reason, message


class Reconciler:
    """Moves DPQueries through their lifecycle."""

    def __init__(self, client: KubeClient, settings: OperatorSettings, registry: Registry, events: EventRecorder,
                 warm: WarmPools | None = None):
        self.client = client
        self.warm = warm
        self.settings = settings
        self.registry = registry
        self.events = events
        self.budgets = Budgets(client, settings.system_namespace)
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._runner_ready: set[str] = set()
        self.deadlines: dict[str, tuple[float, str, str]] = {}

    # -- entry point ---------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> None:
        """Bring one query one or more steps closer to a terminal phase, from its current state."""
        key = (namespace, name)
        async with self._locks[key]:
            try:
                query = await self.client.get(DPQUERY.api_path(namespace, name))
            except NotFound:
                uid = self.registry.by_name.get(key)
                if uid:
                    self.registry.forget(uid)
                    self.deadlines.pop(uid, None)
                self._locks.pop(key, None)
                return
            self.registry.observe(query)
            await self._step(query)

    async def _step(self, query: dict[str, Any]) -> None:
        status = query.get("status") or {}
        phase = Phase(status["phase"]) if status.get("phase") else None
        if query["metadata"].get("deletionTimestamp"):
            await self._finalize(query, phase)
        elif phase is not None and phase.terminal:
            await self._clean_up(query)
        elif phase in (None, Phase.PENDING):
            await self._admit(query)
        else:
            await self._supervise(query)

    # -- admission -----------------------------------------------------------------------------

    async def _admit(self, query: dict[str, Any]) -> None:
        try:
            spec = DPQuerySpec.model_validate(query["spec"])
        except ValidationError as exc:
            await self._end(query, Phase.REJECTED, Reason.INVALID_QUERY, f"invalid spec: {exc.errors()[0]['msg']}")
            return
        uid, namespace = query["metadata"]["uid"], query["metadata"]["namespace"]
        for _ in range(MAX_QUEUE_RETRIES):
            try:
                dataset, metadata = await self._dataset(spec.dataset)
                queue_body = await self._queue_body(spec.queue) if spec.queue else None
                facts = admission.Facts(
                    dataset=spec.dataset,
                    dataset_exists=dataset is not None,
                    experiment=spec.experiment,
                    **await self._experiment_facts(namespace, spec.experiment),
                    dependencies=await self._dependency_phases(namespace, spec.depends_on),
                    queue_name=spec.queue,
                    queue=self._queue_facts(uid, queue_body) if spec.queue else None,
                )
                decision = admission.decide(facts)
                if decision.verdict is admission.Verdict.REJECT:
                    raise Outcome(Phase.REJECTED, decision.reason, decision.message)
                if decision.verdict is admission.Verdict.FAIL:
                    raise Outcome(Phase.FAILED, decision.reason, decision.message)
                assert dataset is not None and metadata is not None
                cost = self._cost(spec, metadata)
                if decision.verdict is admission.Verdict.WAIT:
                    await self._wait(query, decision.reason, decision.message)
                    return
                if spec.mode == Mode.COST:
                    await self._end(query, Phase.SUCCEEDED, Reason.SUCCEEDED, "cost estimated",
                                    cost=cost, spentEpsilon=0.0, spentDelta=0.0)
                    return
                if queue_body is not None and not await self._take_queue_slot(queue_body, uid):
                    continue  # the queue changed (locked, resized, another admission): decide again
                query = await self._ensure_finalizer(query)
                if spec.mode == Mode.QUERY:
                    await self._reserve(spec, uid, cost)
            except Outcome as outcome:
                if outcome.phase == Phase.PENDING:
                    await self._wait(query, outcome.reason, outcome.message)
                else:
                    await self._end(query, outcome.phase, outcome.reason, outcome.message)
                return
            break
        else:
            return  # the queue kept changing; the scheduler brings the query back
        message = (f"reserved epsilon {cost['epsilon']}, delta {cost['delta']}"
                   if spec.mode == Mode.QUERY else "admitted (dummy data, free)")
        query = await self._write_status(query, S.transition(
            query.get("status") or {}, Phase.ADMITTED, Reason.ADMITTED, message,
            cost=cost, queuePosition=None,
        ))
        self.events.record(query, Reason.ADMITTED, message)
        queue = QueueSpec.model_validate(queue_body.get("spec") or {}) if queue_body is not None else None
        await self._supervise(query, Known(dataset, metadata, queue))

    def _cost(self, spec: DPQuerySpec, metadata: Metadata) -> dict[str, float]:
        try:
            cost = estimate_cost(spec.library, spec.payload, metadata)
        except ExternalLibraryError as exc:
            raise Outcome(Phase.REJECTED, Reason.LIBRARY_ERROR, exc.message) from None
        except EngineError as exc:
            raise Outcome(Phase.REJECTED, Reason.INVALID_QUERY, exc.message) from None
        return {"epsilon": float(cost.epsilon), "delta": float(cost.delta)}

    async def _reserve(self, spec: DPQuerySpec, uid: str, cost: dict[str, float]) -> None:
        try:
            grant = await self.budgets.find(spec.user, spec.dataset)
            await self.budgets.move(grant, lambda ledger: L.reserve(ledger, uid, L.Cost(**cost)))
        except L.BudgetError as exc:
            raise Outcome(Phase.REJECTED, exc.reason, str(exc)) from None

    async def _dataset(self, display_name: str) -> tuple[DatasetSpec | None, Metadata | None]:
        try:
            path = DATASET.api_path(self.settings.system_namespace, dataset_object_name(display_name))
            body = await self.client.get(path)
        except NotFound:
            return None, None
        spec = DatasetSpec.model_validate(body["spec"])
        if (spec.display_name or body["metadata"]["name"]) != display_name:
            return None, None
        try:
            return spec, Metadata.model_validate(spec.lomas_metadata())
        except ValidationError as exc:
            raise Outcome(Phase.REJECTED, Reason.DATASET_NOT_FOUND,
                          f"dataset {display_name} has invalid metadata: {exc.errors()[0]['msg']}") from None

    async def _experiment_facts(self, namespace: str, experiment: str | None) -> dict[str, bool]:
        if experiment is None:
            return {}
        try:
            body = await self.client.get(EXPERIMENT.api_path(namespace, experiment))
        except NotFound:
            return {"experiment_exists": False}
        return {"experiment_locked": bool((body.get("spec") or {}).get("locked"))}

    async def _dependency_phases(self, namespace: str, names: list[str]) -> dict[str, Phase | None]:
        phases: dict[str, Phase | None] = {}
        for name in names:
            try:
                body = await self.client.get(DPQUERY.api_path(namespace, name))
            except NotFound:
                phases[name] = None
                continue
            phase = (body.get("status") or {}).get("phase")
            phases[name] = Phase(phase) if phase else Phase.PENDING
        return phases

    async def _queue_body(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(QUEUE.api_path(self.settings.system_namespace, name))
        except NotFound:
            return None

    async def _queue_spec(self, name: str) -> QueueSpec | None:
        body = await self._queue_body(name)
        return None if body is None else QueueSpec.model_validate(body.get("spec") or {})

    def _queue_facts(self, uid: str, body: dict[str, Any] | None) -> admission.QueueFacts:
        if body is None:
            return admission.QueueFacts(exists=False)
        spec = QueueSpec.model_validate(body.get("spec") or {})
        name = body["metadata"]["name"]
        return admission.QueueFacts(
            exists=True, locked=spec.locked, max_concurrent=spec.max_concurrent,
            running=self.registry.running(name), ahead=self.registry.ahead_of(uid),
        )

    async def _take_queue_slot(self, body: dict[str, Any], uid: str) -> bool:
        """Order this admission against every change of the queue (kueue#1651).

        The queue's admission serial is bumped on the resourceVersion the decision was made on: a lock
        (or another admission) that came in between makes the write fail, and the decision is retaken.
        """
        meta, status = body["metadata"], body.get("status") or {}
        entry = self.registry.entries.get(uid)
        before = (entry.phase, entry.reason) if entry else None
        self.registry.set_phase(uid, Phase.ADMITTED)  # holds the slot for concurrent decisions
        try:
            await self.client.patch(QUEUE.api_path(meta["namespace"], meta["name"]) + "/status", {
                "metadata": {"resourceVersion": meta["resourceVersion"]},
                "status": {"admissionSerial": int(status.get("admissionSerial") or 0) + 1},
            })
        except (Conflict, NotFound) as exc:
            if before is not None:
                self.registry.set_phase(uid, *before)
            if isinstance(exc, NotFound):
                raise Outcome(Phase.PENDING, Reason.QUEUE_NOT_FOUND, f"queue {meta['name']} does not exist") from None
            return False
        return True

    async def _wait(self, query: dict[str, Any], reason: str, message: str) -> None:
        status = query.get("status") or {}
        admitted = next((c for c in status.get("conditions") or [] if c.get("type") == S.ADMITTED), {})
        if status.get("phase") == Phase.PENDING.value and admitted.get("reason") == reason \
                and status.get("message") == message:
            return  # nothing changed: write nothing (kueue#8095)
        query = await self._write_status(query, S.waiting(status, reason, message))
        if admitted.get("reason") != reason:
            self.events.record(query, reason, message)

    # -- running -------------------------------------------------------------------------------

    async def _supervise(self, query: dict[str, Any], known: Known | None = None) -> None:
        meta, status = query["metadata"], query.get("status") or {}
        uid, namespace = meta["uid"], meta["namespace"]
        spec = DPQuerySpec.model_validate(query["spec"])
        name = status.get("podName")
        deadline = self._deadline(spec, status)
        if deadline is not None:
            self.deadlines[uid] = (deadline, namespace, meta["name"])
        try:
            pod = await self._get_or_create_pod(query, spec, name, known)
        except Outcome as outcome:
            await self._end(query, outcome.phase, outcome.reason, outcome.message)
            return
        if pod is None:
            return
        pod_phase = (pod.get("status") or {}).get("phase")
        if pod_phase in ("Succeeded", "Failed"):
            await self._finish(query, spec, pod)
        elif deadline is not None and time.time() > deadline:
            await self._time_out(query, spec)
        elif pod_phase == "Running" and status.get("phase") != Phase.RUNNING.value:
            query = await self._write_status(query, S.transition(status, Phase.RUNNING, Reason.POD_RUNNING,
                                                                 f"pod {name} is running"))
            self.events.record(query, Reason.POD_RUNNING, f"pod {name} is running")

    def _deadline(self, spec: DPQuerySpec, status: dict[str, Any]) -> float | None:
        if not spec.timeout or not status.get("admittedAt"):
            return None
        admitted = dt.datetime.fromisoformat(status["admittedAt"].replace("Z", "+00:00")).timestamp()
        return admitted + parse_duration(spec.timeout)

    async def _get_or_create_pod(self, query: dict[str, Any], spec: DPQuerySpec, name: str | None,
                                 known: Known | None = None) -> dict[str, Any] | None:
        """The query's one pod: the recorded one, else one found by label, else a warm or a new cold pod."""
        namespace, uid = query["metadata"]["namespace"], query["metadata"]["uid"]
        if name is not None:
            try:
                return await self.client.get(core_path("pods", namespace, name))
            except NotFound:
                # The pod existed and is gone: if it left a result we may still release it, never re-run it.
                output = await self._output(query)
                if output is not None:
                    await self._finish(query, spec, None, output)
                else:
                    await self._end(query, Phase.FAILED, Reason.FAILED, f"pod {name} disappeared before it reported")
                return None
        found = (await self.client.list(core_path("pods", namespace),
                                        label_selector=f"{QUERY_UID_LABEL}={uid}")).get("items", [])
        if found:
            pod = found[0]
            await self._record_pod(query, pod["metadata"]["name"])
            if self.warm is not None:
                self.warm.deliver(namespace, pod["metadata"]["name"])
            return pod
        if known is None:
            dataset, metadata = await self._dataset(spec.dataset)
            queue = await self._queue_spec(spec.queue) if spec.queue else None
        else:
            dataset, metadata, queue = known.dataset, known.metadata, known.queue
        if dataset is None or metadata is None:
            await self._end(query, Phase.FAILED, Reason.DATASET_NOT_FOUND, f"dataset {spec.dataset} disappeared")
            return None
        await self.ensure_runner_access(namespace)
        warm_fits = queue is not None and queue.warm_pods and (
            not queue.warm_libraries or spec.library in queue.warm_libraries)
        if warm_fits and self.warm is not None and dataset.pvc is None and not dataset.credentials_secret \
                and not spec.plugins:
            warm = await self.warm.claim(query, spec.queue)
            if warm is not None:
                await self._record_pod(query, warm)
                self.warm.deliver(namespace, warm)
                return await self.client.get(core_path("pods", namespace, warm))
        if dataset.credentials_secret and spec.mode == Mode.QUERY:
            secret = dataset.credentials_secret
            await self._mirror("secrets", secret, credentials_copy_name(secret), namespace,
                               f"the dataset's credentials Secret {secret} is missing")
        for plugin in spec.plugins:
            await self._mirror("configmaps", package_config_map(plugin), package_copy(plugin), namespace,
                               f"the task plugin package {plugin} is missing")
        timeout = parse_duration(spec.timeout) if spec.timeout else None
        manifest = query_pod(query, runner_input(query, dataset, metadata), dataset, self.settings, queue, timeout)
        try:
            pod = await self.client.create(core_path("pods", namespace), manifest)
        except Conflict as exc:
            if not exc.already_exists:
                raise
            pod = await self.client.get(core_path("pods", namespace, manifest["metadata"]["name"]))
        await self._record_pod(query, pod["metadata"]["name"])
        return pod

    async def _mirror(self, resource: str, name: str, copy: str, namespace: str, missing: str) -> None:
        """Copy a Secret or ConfigMap of the operator's namespace next to the pod that needs it.

        Pods cannot read across namespaces; users cannot read Secrets in query namespaces either, and the
        copy follows every change of the original.
        """
        try:
            original = await self.client.get(core_path(resource, self.settings.system_namespace, name))
        except NotFound:
            raise Outcome(Phase.FAILED, Reason.FAILED, missing) from None
        body = {"apiVersion": "v1", "kind": original["kind"],
                "metadata": {"name": copy, "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": "dpkube"}},
                **{key: original[key] for key in ("type", "data", "binaryData") if key in original}}
        try:
            current = await self.client.get(core_path(resource, namespace, copy))
        except NotFound:
            try:
                await self.client.create(core_path(resource, namespace), body)
            except Conflict:
                pass
            return
        if any(current.get(key) != body.get(key) for key in ("data", "binaryData")):
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.client.replace(core_path(resource, namespace, copy), body)

    async def _record_pod(self, query: dict[str, Any], name: str) -> None:
        """Write down which pod runs the query before that pod may start on it."""
        status = query.get("status") or {}
        conditions = S.set_condition(status.get("conditions") or [], S.POD_CREATED, True, Reason.POD_CREATED,
                                     f"pod {name} runs the query", S.now())
        query["status"] = {**status, "conditions": conditions, "podName": name}
        await self._write_status(query, query["status"])

    async def runner_input_for(self, namespace: str, uid: str) -> dict[str, Any] | None:
        """The input a warm pod gets for the query it claimed."""
        entry = self.registry.entries.get(uid)
        if entry is None:
            return None
        try:
            query = await self.client.get(DPQUERY.api_path(namespace, entry.name))
        except NotFound:
            return None
        spec = DPQuerySpec.model_validate(query["spec"])
        dataset, metadata = await self._dataset(spec.dataset)
        if dataset is None or metadata is None:
            return None
        return runner_input(query, dataset, metadata).model_dump(mode="json", by_alias=False)

    async def ensure_runner_access(self, namespace: str) -> None:
        """The runner service account and its create-Secrets-only role, once per namespace."""
        if namespace in self._runner_ready:
            return
        for path, body in runner_access(namespace, self.settings.runner_service_account):
            with contextlib.suppress(Conflict):
                await self.client.create(path.format(ns=namespace), body)
        self._runner_ready.add(namespace)

    async def _output(self, query: dict[str, Any]) -> RunnerOutput | None:
        raw = await read_result(self.client, query["metadata"]["namespace"], query["metadata"]["uid"])
        if raw is None:
            return None
        try:
            return RunnerOutput.model_validate_json(raw)
        except ValidationError:
            return RunnerOutput(ok=False, error={"kind": ErrorKind.INTERNAL, "message": "unreadable runner output"})

    async def _finish(self, query: dict[str, Any], spec: DPQuerySpec, pod: dict[str, Any] | None,
                      output: RunnerOutput | None = None) -> None:
        """The pod has ended: charge and release its result, or fail and refund."""
        if output is None:
            output = await self._output(query)
        pod_status = (pod or {}).get("status") or {}
        terminated = ((pod_status.get("containerStatuses") or [{}])[0].get("state") or {}).get("terminated") or {}
        if "DeadlineExceeded" in (pod_status.get("reason"), terminated.get("reason")):
            await self._end(query, Phase.TIMED_OUT, Reason.TIMED_OUT, f"query ran longer than {spec.timeout}")
            return
        if output is not None and output.ok and (pod is None or pod_status.get("phase") == "Succeeded"):
            await self._release(query, spec, output)
            return
        if output is not None and output.error is not None:
            reason = FAILURE_REASONS.get(output.error.kind, Reason.FAILED)
            message = output.error.message
        else:
            reason = Reason.FAILED
            message = (terminated.get("message") or f"runner exited with code {terminated.get('exitCode')}")[-1000:]
        await self._end(query, Phase.FAILED, reason, message)

    async def _release(self, query: dict[str, Any], spec: DPQuerySpec, output: RunnerOutput) -> None:
        uid = query["metadata"]["uid"]
        status = query.get("status") or {}
        cost = status.get("cost") or {"epsilon": 0.0, "delta": 0.0}
        spent = {"spentEpsilon": 0.0, "spentDelta": 0.0}
        if spec.mode == Mode.QUERY:
            grant = await self.budgets.find(spec.user, spec.dataset)
            await self.budgets.move(grant, lambda ledger: L.charge(ledger, uid))
            spent = {"spentEpsilon": cost["epsilon"], "spentDelta": cost["delta"]}
            self.events.record(query, Reason.CHARGED, f"charged epsilon {cost['epsilon']}, delta {cost['delta']}")
        published = await self._publish(query, output.response)
        conditions = S.set_condition(status.get("conditions") or [], S.CHARGED, spec.mode == Mode.QUERY,
                                     Reason.CHARGED, "cost moved from reserved to spent", S.now())
        await self._end({**query, "status": {**status, "conditions": conditions}}, Phase.SUCCEEDED,
                        Reason.SUCCEEDED, "result released", **spent, **published)

    async def _publish(self, query: dict[str, Any], response: Any) -> dict[str, Any]:
        text = json.dumps(response)
        if len(text) <= self.settings.result_inline_max_bytes:
            return {"result": response}
        meta = query["metadata"]
        base = f"dpq-{meta['uid']}-result"
        size = 900_000
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        for index, piece in enumerate(pieces):
            body = {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": base if index == 0 else f"{base}-{index}", "namespace": meta["namespace"],
                             "ownerReferences": [{"apiVersion": query["apiVersion"], "kind": "DPQuery",
                                                  "name": meta["name"], "uid": meta["uid"]}]},
                "data": {"result.json": piece},
            }
            try:
                await self.client.create(core_path("configmaps", meta["namespace"]), body)
            except Conflict:
                await self.client.replace(core_path("configmaps", meta["namespace"], body["metadata"]["name"]), body)
        return {"resultRef": {"configMap": base, "key": "result.json", "chunks": len(pieces)}}

    async def _time_out(self, query: dict[str, Any], spec: DPQuerySpec) -> None:
        """Past its deadline the pod is killed; whatever it produced is never released, so it is refunded."""
        await self._delete_pod(query)
        await self._end(query, Phase.TIMED_OUT, Reason.TIMED_OUT, f"query ran longer than {spec.timeout}")

    # -- endings -------------------------------------------------------------------------------

    async def _end(self, query: dict[str, Any], phase: Phase, reason: str, message: str, **fields: Any) -> None:
        """Write a terminal phase; every ending but a release returns the reservation first."""
        uid = query["metadata"]["uid"]
        if phase != Phase.SUCCEEDED:
            await self._refund(query)
        query = await self._write_status(query, S.transition(query.get("status") or {}, phase, reason, message,
                                                             **fields))
        self.events.record(query, reason, message, warning=phase != Phase.SUCCEEDED)
        self.deadlines.pop(uid, None)
        await self._clean_up(query)

    async def _refund(self, query: dict[str, Any]) -> None:
        spec = query.get("spec") or {}
        if spec.get("mode", Mode.QUERY.value) != Mode.QUERY.value:
            return
        uid = query["metadata"]["uid"]
        try:
            grant = await self.budgets.find(spec["user"], spec["dataset"])
        except L.BudgetError:
            return
        before = grant.ledger
        after = await self.budgets.move(grant, lambda ledger: L.refund(ledger, uid))
        if uid in before.reservations and uid not in after.reservations:
            self.events.record(query, Reason.REFUNDED, "reservation returned: nothing was released")

    async def _clean_up(self, query: dict[str, Any]) -> None:
        """After a terminal phase: remove the pod and the private result, forget the charge, drop the finalizer."""
        meta = query["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            return
        await self._delete_pod(query)
        await delete_result(self.client, meta["namespace"], meta["uid"])
        spec = query.get("spec") or {}
        if spec.get("mode", Mode.QUERY.value) == Mode.QUERY.value:
            try:
                grant = await self.budgets.find(spec["user"], spec["dataset"])
                uid = meta["uid"]
                await self.budgets.move(grant, lambda ledger: L.forget(L.refund(ledger, uid), uid))
            except L.BudgetError:
                pass
        await self._remove_finalizer(query)

    async def _finalize(self, query: dict[str, Any], phase: Phase | None) -> None:
        """Deletion before the end cancels: the pod goes, the reservation comes back."""
        if phase is None or not phase.terminal:
            await self._delete_pod(query)
            await self._end(query, Phase.CANCELLED, Reason.CANCELLED, "deleted before it finished")
        else:
            await self._clean_up(query)

    async def _delete_pod(self, query: dict[str, Any]) -> bool:
        meta = query["metadata"]
        name = (query.get("status") or {}).get("podName") or pod_name(meta["uid"])
        try:
            await self.client.delete(core_path("pods", meta["namespace"], name), grace_seconds=0)
        except NotFound:
            return False
        return True

    # -- writes --------------------------------------------------------------------------------

    async def _write_status(self, query: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole status (a JSON patch: a merge patch would delete every null inside the result)."""
        meta = query["metadata"]
        status = {key: value for key, value in status.items() if value is not None}
        try:
            updated = await self.client.patch(DPQUERY.api_path(meta["namespace"], meta["name"]) + "/status",
                                              [{"op": "add", "path": "/status", "value": status}], kind="json")
        except NotFound:
            return {**query, "status": status}
        self.registry.observe(updated)
        return updated

    async def _ensure_finalizer(self, query: dict[str, Any]) -> dict[str, Any]:
        finalizers = list(query["metadata"].get("finalizers") or [])
        if FINALIZER in finalizers:
            return query
        meta = query["metadata"]
        return await self.client.patch(DPQUERY.api_path(meta["namespace"], meta["name"]), {
            "metadata": {"finalizers": [*finalizers, FINALIZER], "resourceVersion": meta["resourceVersion"]}})

    async def _remove_finalizer(self, query: dict[str, Any]) -> None:
        meta = query["metadata"]
        path = DPQUERY.api_path(meta["namespace"], meta["name"])
        for _ in range(10):
            try:
                current = await self.client.get(path)
            except NotFound:
                return
            finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != FINALIZER]
            if len(finalizers) == len(current["metadata"].get("finalizers") or []):
                return
            try:
                await self.client.patch(path, {"metadata": {
                    "finalizers": finalizers, "resourceVersion": current["metadata"]["resourceVersion"]}})
                return
            except Conflict:
                continue
            except NotFound:
                return
