"""The DPQuery reconciler: reads a query and its pod, asks the lifecycle for the next step, carries it out.

Level-based and idempotent: every step is keyed by the query's uid and re-derived from what the API
server holds, under a per-query lock, so watch events that arrive late, collapsed or twice change
nothing (kopf#698). The decisions live in `domain.lifecycle`; the money moves in `endings`; admission
and pods in their own modules. The runner's channel calls in here too, under the same lock.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from dpkube.k8s import dpqueries
from dpkube.k8s.client import KubeClient, NotFound, core_path
from dpkube.k8s.events import EventRecorder
from dpkube.k8s.snapshots import SnapshotMissing
from dpkube.models.conditions import ConditionType, Reason
from dpkube.models.dpquery import DPQueryStatus, Mode, Phase, phase_of
from dpkube.models.kinds import DPQUERY
from dpkube.models.runner import RunnerOutput
from dpkube.operator import admission as A
from dpkube.operator.channel import Handover, NotReady
from dpkube.operator.domain import lifecycle as LC
from dpkube.operator.domain import status as S
from dpkube.operator.endings import Endings
from dpkube.operator.flows import Flows
from dpkube.operator.launcher import Launcher, LaunchRefused
from dpkube.operator.metrics import STATUS_WRITES
from dpkube.operator.recall import Recall, kept
from dpkube.operator.registry import Registry

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
"""How long running steps may take to end at shutdown before they are cancelled."""

SeenPod = tuple[str, "LC.PodView | None"]
"""A pod as its watch event showed it: its name, and its view (None once it was deleted)."""


class RetryLater(Exception):
    """A step that cannot be taken now (its queue kept changing, the pricing pool is full): the query is
    tried again on its own backoff, not only when the resync comes round to it."""


def utc_now() -> dt.datetime:
    """The operator's clock: UTC, whole seconds (what the API server keeps of a timestamp)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Reconciler:
    """Moves DPQueries through their lifecycle."""

    def __init__(self, client: KubeClient, registry: Registry, events: EventRecorder, admission: A.Admission,
                 launcher: Launcher, endings: Endings, clock: Callable[[], dt.datetime] = utc_now,
                 background: KubeClient | None = None):
        self.client = client
        self.background = background or client
        """Where the answers to waiting queries go (a lane of the client: they never crowd out admissions)."""
        self.registry = registry
        self.events = events
        self.admission = admission
        self.launcher = launcher
        self.endings = endings
        self.clock = clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.recall = Recall()
        self._unwritten: dict[str, DPQueryStatus] = {}
        """The Pending status of each query that waits for its turn unwritten (`_wait_unwritten`)."""
        self._steps: set[asyncio.Task[None]] = set()
        self.flows = Flows()

    # -- entry points --------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str, seen: dict[str, Any] | None = None,
                        remembered: bool = False) -> None:
        """Bring one query one or more steps closer to a terminal phase, from its current state.

        `seen` is the object as a watch event just delivered it: the newer of it and what this process
        wrote last is the current state. Without it, the query is read, unless `remembered` lets the body
        this process holds stand for it (a queue's head line: the query's last write was this process's).
        """
        if seen is not None and self.recall.is_echo(seen):
            return  # only what this process wrote last, coming back
        async with self._locks[(namespace, name)]:
            if seen is not None and self.recall.is_echo(seen):
                return  # a write made while this event waited for the lock already answered it
            if seen is None:
                uid = self.registry.by_name.get((namespace, name))
                await self._step(namespace, name, self.recall.body(uid) if remembered and uid else None)
            elif (newest := self.recall.newest(seen)) is not None:  # None: the event predates the query's end
                await self._step(namespace, name, newest)

    def reconcile_soon(self, namespace: str, name: str, seen: dict[str, Any]) -> None:
        """`reconcile` for a watch event, as a task of its own in the flow of its user and queue (`Flows`), so
        the watch's worker ends at once: a burst that outruns the API connections then waits as one small task
        per query, holding the body without its managedFields, rather than as a whole watch worker each. The
        steps of one query still run in event order (its flow and its lock are both first come, first served)."""
        if self.recall.is_echo(seen):
            return
        body = kept(seen)
        spec = body.get("spec") or {}
        flow = f"{spec.get('user') or namespace}/{spec.get('queue') or ''}"
        self._spawn(self.flows.run(flow, lambda: self.reconcile(namespace, name, body)))

    def pod_changed_soon(self, namespace: str, name: str, uid: str, pod: dict[str, Any], gone: bool) -> None:
        """`pod_changed` for a watch event, as a task of its own (the query's lock keeps its steps in event order)."""
        self._spawn(self.pod_changed(namespace, name, uid, pod, gone))

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        """A step as a task from an empty context (the watch's holds the whole event it came from), which
        `stop` waits for."""
        task = asyncio.get_running_loop().create_task(step, context=contextvars.Context())
        self._steps.add(task)
        task.add_done_callback(self._step_done)

    def _step_done(self, task: asyncio.Task[None]) -> None:
        self._steps.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("a step failed; the query's backoff retries it", exc_info=error)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Shutdown: no waiting step starts, running ones get `grace` seconds to end, then are cancelled (a new
        leader, or this one restarted, resumes them: every step is idempotent)."""
        self.flows.close()
        if self._steps:
            await asyncio.wait(set(self._steps), timeout=grace)
        for task in list(self._steps):
            task.cancel()
        await asyncio.gather(*self._steps, return_exceptions=True)

    def forget(self, uid: str) -> None:
        """The query was deleted: nothing of it is kept (a query deleted while it waited held a remembered body)."""
        self.registry.forget(uid)
        self.recall.forget(uid)
        self._unwritten.pop(uid, None)

    async def pod_changed(self, namespace: str, name: str, uid: str, pod: dict[str, Any], gone: bool) -> None:
        """The query's pod started, ended or went: step the query on, with that pod as it was seen.

        The event is news about the pod, not the query: the query is read only when this process holds
        no copy of it, and not at all once it has ended (its clean-up, pod included, follows its ending, and
        the resync retries a clean-up that failed)."""
        entry = self.registry.entries.get(uid)
        if entry is not None and entry.phase is not None and entry.phase.terminal:
            return
        async with self._locks[(namespace, name)]:
            await self._step(namespace, name, self.recall.body(uid),
                             (pod["metadata"]["name"], None if gone else LC.PodView.of(pod)))

    async def _step(self, namespace: str, name: str, known: dict[str, Any] | None, pod: SeenPod | None = None) -> None:
        """One step under the query's lock, from the body this process knows (None: read it); a failure is
        retried on the query's backoff."""
        try:
            body = known or await self._read(namespace, name)
            if body is not None:
                await self._advance(body, None, pod)
        except RetryLater:
            self.recall.failed((namespace, name))
            return
        except Exception:
            self.recall.failed((namespace, name))
            raise
        self.recall.succeeded((namespace, name))

    async def deliver(self, namespace: str, uid: str, output: RunnerOutput) -> bool:
        """A runner's output: the query ends as it says (charged first when released); False if it already ended."""
        return await self._with_query(namespace, uid, lambda body, query: self._delivered(body, query, output))

    async def allow_read(self, namespace: str, uid: str) -> bool:
        """Record that the runner reads the private data, before it does; False when it must not."""
        return await self._with_query(namespace, uid, self._data_read)

    async def input_for(self, namespace: str, uid: str) -> Handover | None:
        """What the runner claiming query `uid` gets; None when the query ended, NotReady before admission."""
        found: list[Handover] = []

        async def build(body: dict[str, Any], query: LC.QueryView) -> bool:
            if query.status.phase == Phase.PENDING:
                raise NotReady(query.name)
            try:
                runner_input = (await self.launcher.input_for(query)).model_dump(mode="json", by_alias=False)
                found.append(Handover(runner_input, read_allowed=query.data_read))
            except (LaunchRefused, SnapshotMissing) as exc:
                log.warning("no input for query %s/%s: %s", query.namespace, query.name, exc)
                return False
            return True

        return found[0] if await self._with_query(namespace, uid, build) else None

    # -- steps ---------------------------------------------------------------------------------

    async def _advance(self, body: dict[str, Any], output: RunnerOutput | None,
                       seen_pod: SeenPod | None = None) -> None:
        try:
            query = LC.QueryView.of(body)
        except ValidationError as exc:
            if not S.parse(body.get("status")).phase.terminal:
                await self.endings.finish(body, S.parse(body.get("status")), Phase.REJECTED, Reason.INVALID_QUERY,
                                          f"invalid spec: {exc.errors()[0]['msg']}", charged=False)
            return
        pod = await self._pod(query, seen_pod)
        await self._dispatch(body, query, LC.next_step(query, pod, output, self.clock()))

    async def _dispatch(self, body: dict[str, Any], query: LC.QueryView, step: LC.Step) -> None:
        self._unwritten.pop(query.uid, None)  # a step decides afresh whether the query waits unwritten
        if isinstance(step, LC.Admit):
            await self._admit(body, query)
        elif isinstance(step, LC.StartPod):
            await self._start(body, query)
        elif isinstance(step, LC.MarkRunning):
            message = f"pod {step.pod} is running"
            await self._write(body, S.transition(query.status, Phase.RUNNING, Reason.POD_RUNNING, message,
                                                 self.clock()), Reason.POD_RUNNING, message)
        elif isinstance(step, LC.Release):
            self.recall.keep(await self.endings.release(body, query, step.response))
        elif isinstance(step, LC.End):
            self.recall.keep(await self.endings.end(body, query, step))
        elif isinstance(step, LC.CleanUp):
            self.recall.keep(await self.endings.clean_up(body))
        if isinstance(step, LC.End | LC.Release | LC.CleanUp):
            self.recall.deadlines.pop(query.uid, None)
        else:
            self._track_deadline(LC.QueryView.of(body))

    async def _admit(self, body: dict[str, Any], query: LC.QueryView) -> None:
        async def ensure_finalizer() -> None:
            body.update(await dpqueries.add_finalizer(self.client, body, LC.FINALIZER))

        outcome = await self.admission.decide(query, ensure_finalizer)
        if isinstance(outcome, A.Waiting):
            status = S.waiting(query.status, outcome.reason, outcome.message, self.clock())
            if status is not None and outcome.reason == Reason.WAITING_FOR_QUEUE and phase_of(body) is None:
                self._wait_unwritten(body, status)
            elif status is not None:
                previous = S.condition(query.status, ConditionType.ADMITTED)
                changed = previous is None or previous.reason != outcome.reason
                await self._write(body, status, outcome.reason if changed else None, outcome.message,
                                  client=self.background)
            if outcome.retry:
                raise RetryLater(query.name)
        elif isinstance(outcome, A.Refused):
            self.recall.keep(await self.endings.end(body, query, LC.End(outcome.phase, outcome.reason, outcome.message,
                                                                  charge=False)))
        elif isinstance(outcome, A.Priced):
            self.recall.keep(await self.endings.priced(body, query, outcome.cost))
        elif isinstance(outcome, A.Busy):
            raise RetryLater(query.name)
        elif isinstance(outcome, A.Admitted):
            admitted = LC.QueryView.of(body)
            try:
                launched = await self.launcher.start(body, admitted, outcome.dataset, outcome.queue)
            except LaunchRefused as exc:
                await self._launch_refused(body, admitted, exc)
                return
            message = (f"reserved epsilon {outcome.cost.epsilon}, delta {outcome.cost.delta}"
                       if query.spec.mode == Mode.QUERY else "admitted (dummy data, free)")
            now, pod = self.clock(), launched.pod
            status = S.transition(admitted.status, Phase.ADMITTED, Reason.ADMITTED, message, now, cost=outcome.cost,
                                  metadata_digest=outcome.metadata_digest, pod_name=pod, queue_position=None,
                                  queue_serial=outcome.queue_serial)
            status = S.set_condition(status, ConditionType.POD_CREATED, True, Reason.POD_CREATED,
                                     f"pod {pod} runs the query", now)
            if launched.running:  # a warm pod polls already: one write says admitted and running
                status = S.transition(status, Phase.RUNNING, Reason.POD_RUNNING, f"pod {pod} is running", now)
                if query.spec.mode == Mode.QUERY:  # and, as it runs the query at once, gives the leave to read
                    # (the operator priced it on the snapshot the runner gets: nothing is checked between)
                    status, message = S.reading(status, now), f"{message}; the runner reads the private data"
            await self._write(body, status, Reason.ADMITTED, message)

    def _wait_unwritten(self, body: dict[str, Any], status: DPQueryStatus) -> None:
        """A new query that only waits for its turn in an open queue is not written yet, as a workload behind the
        head of a Kueue StrictFIFO queue is not: its head line admits it with one write, and `show_place` writes
        this status once the scheduler shows its place. Until then the registry alone knows it waits."""
        uid = body["metadata"]["uid"]
        self._unwritten[uid] = status
        self.registry.set_phase(uid, Phase.PENDING, Reason.WAITING_FOR_QUEUE)
        self.recall.hold(body)

    async def show_place(self, namespace: str, name: str, place: int) -> None:
        """Write a waiting query's place in its queue (kueue#1657); a query not written since it began to wait
        gets its whole Pending status with it."""
        uid = self.registry.by_name.get((namespace, name))
        if uid is None:
            return
        async with self._locks[(namespace, name)]:
            status = self._unwritten.pop(uid, None)
            if status is None:
                try:
                    written = await self.background.patch(DPQUERY.api_path(namespace, name) + "/status",
                                                          {"status": {"queuePosition": place}})
                except NotFound:
                    return
                self.recall.wrote(written)  # its watch event is an echo: nothing to reconcile
                return
            body = self.recall.body(uid) or await self._read(namespace, name)
            if body is None or phase_of(body) is not None:
                return  # it moved on meanwhile
            condition = S.condition(status, ConditionType.ADMITTED)
            await self._write(body, status.model_copy(update={"queue_position": place}),
                              condition.reason if condition else None, status.message or "", client=self.background)

    async def _start(self, body: dict[str, Any], query: LC.QueryView) -> None:
        try:
            pod = (await self.launcher.start(body, query)).pod
        except LaunchRefused as exc:
            await self._launch_refused(body, query, exc)
            return
        status = S.set_condition(query.status.model_copy(update={"pod_name": pod}), ConditionType.POD_CREATED, True,
                                 Reason.POD_CREATED, f"pod {pod} runs the query", self.clock())
        await self._write(body, status, None, "")

    async def _launch_refused(self, body: dict[str, Any], query: LC.QueryView, why: LaunchRefused) -> None:
        """No pod can run the query (nothing was read): it fails, and its reservation comes back."""
        self.recall.keep(await self.endings.end(body, query, LC.End(Phase.FAILED, Reason.FAILED, str(why),
                                                                    charge=False)))

    async def _delivered(self, body: dict[str, Any], query: LC.QueryView, output: RunnerOutput) -> bool:
        if query.status.phase.terminal or query.deleting or query.status.phase == Phase.PENDING:
            return False
        if output.error is not None:  # the library's own words: the operator's log only, never the user's
            log.info("query %s/%s failed in its runner: %s: %s", query.namespace, query.name, output.error.kind,
                     output.error.message)
        await self._dispatch(body, query, LC.next_step(query, None, output, self.clock()))
        return True

    async def _data_read(self, body: dict[str, Any], query: LC.QueryView) -> bool:
        if query.status.phase.terminal or query.deleting or query.spec.mode != Mode.QUERY:
            return False
        if query.data_read:
            return True
        await self._write(body, S.reading(query.status, self.clock()), Reason.DATA_READ,
                          "the runner reads the private data")
        return True

    # -- reads and writes ----------------------------------------------------------------------

    async def _with_query(self, namespace: str, uid: str, act: Callable[[dict[str, Any], LC.QueryView], Any]) -> bool:
        entry = self.registry.entries.get(uid)
        if entry is None or entry.namespace != namespace:
            return False
        async with self._locks[(namespace, entry.name)]:
            body = self.recall.body(uid) or await self._read(namespace, entry.name)
            if body is None or body["metadata"]["uid"] != uid:
                return False
            return bool(await act(body, LC.QueryView.of(body)))

    async def _read(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body = await self.client.get(DPQUERY.api_path(namespace, name))
        except NotFound:
            uid = self.registry.by_name.get((namespace, name))
            if uid:
                self.forget(uid)
            self._locks.pop((namespace, name), None)
            return None
        self.registry.observe(body)
        self.recall.keep(body)
        return body

    async def _pod(self, query: LC.QueryView, seen: SeenPod | None = None) -> LC.PodView | None:
        """The pod the query records, if any; only admitted, running or deleted queries look for it. A pod
        event's own copy of it saves reading it again."""
        if query.status.pod_name is None or query.status.phase.terminal:
            return None
        if seen is not None and seen[0] == query.status.pod_name:
            return seen[1]
        try:
            return LC.PodView.of(await self.client.get(core_path("pods", query.namespace, query.status.pod_name)))
        except NotFound:
            return None

    async def _write(self, body: dict[str, Any], status: DPQueryStatus, event: str | None, message: str,
                     client: KubeClient | None = None) -> None:
        STATUS_WRITES.inc()
        written = await dpqueries.write_status(client or self.client, body, S.serialise(status))
        body.update(written)
        self.registry.observe(written)
        self.recall.wrote(written)
        if event is not None:
            self.events.record(written, event, message)

    def _track_deadline(self, query: LC.QueryView) -> None:
        """Remember when an unfinished query times out, so the scheduler wakes it then."""
        deadline = query.deadline()
        if deadline is None or query.status.phase.terminal or query.deleting:
            self.recall.deadlines.pop(query.uid, None)
        else:
            self.recall.deadlines[query.uid] = (deadline.timestamp(), query.namespace, query.name)
