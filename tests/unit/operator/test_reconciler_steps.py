"""What a reconcile does without a step: an event a write of this process already answered costs no read,
an admission that found its queue busy is tried again on the query's backoff, and a pod event is news
about the pod only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dpkube.models.cost import Cost
from dpkube.models.dpquery import RELEASE_FINALIZER
from dpkube.operator import admission as A
from dpkube.operator.flows import Flows
from dpkube.operator.launcher import Launched
from dpkube.operator.recall import RETRY_FIRST_SECONDS
from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Registry
from dpkube_testing.builders import dpquery


class Untouchable:
    """Any use of a collaborator fails the test: the reconcile must do nothing."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the reconcile used {name}")


def query(version: int) -> dict[str, Any]:
    return {"metadata": {"uid": "u1", "namespace": "ns", "name": "q", "resourceVersion": str(version)},
            "spec": {}, "status": {"phase": "Admitted"}}


async def test_an_event_answered_by_a_write_made_while_it_waited_for_the_lock_is_skipped() -> None:
    nobody = Untouchable()
    reconciler = Reconciler(nobody, Registry(), nobody, nobody, nobody, nobody)  # type: ignore[arg-type]
    async with reconciler._locks[("ns", "q")]:  # a step of the same query is under way
        event = asyncio.ensure_future(reconciler.reconcile("ns", "q", query(10)))
        await asyncio.sleep(0)
        reconciler.recall.wrote(query(11))  # the step writes the status
    await event


class BusyAdmission:
    """Every admission finds its queue (or the pricing pool) busy."""

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Busy:
        return A.Busy()


async def test_a_query_whose_admission_was_busy_is_tried_again_on_its_backoff() -> None:
    nobody = Untouchable()
    reconciler = Reconciler(nobody, Registry(), nobody, BusyAdmission(), nobody, nobody)  # type: ignore[arg-type]
    pending = dpquery("q")
    pending["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "10"}

    await reconciler.reconcile("ns", "q", pending)

    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == {("ns", "q")}


class StatusWritesOnly:
    """Takes status writes and refuses every read: the step must come from what is at hand."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.statuses: list[dict[str, Any]] = []

    async def patch(self, path: str, body: Any, kind: str = "merge") -> dict[str, Any]:
        self.writes.append(path)
        self.statuses.append(body[0]["value"])
        return {**admitted(), "status": body[0]["value"]}

    async def get(self, path: str) -> dict[str, Any]:
        raise AssertionError(f"the step read {path}")


class Events:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def record(self, body: Any, reason: str, message: str, warning: bool = False) -> None:
        self.reasons.append(reason)


def admitted(**spec: Any) -> dict[str, Any]:
    body = dpquery("q", **spec)
    body["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "11", "finalizers": [RELEASE_FINALIZER]}
    body["status"] = {"phase": "Admitted", "podName": "pod-1"}
    return body


async def test_a_pod_event_moves_its_query_on_from_the_pod_it_carries_without_reading_either() -> None:
    nobody, client, events = Untouchable(), StatusWritesOnly(), Events()
    reconciler = Reconciler(client, Registry(), events, nobody, nobody, nobody)  # type: ignore[arg-type]
    reconciler.recall.keep(admitted(mode="dummy", dummy={"rows": 100, "seed": 42}))

    await reconciler.pod_changed("ns", "q", "u1", {"metadata": {"name": "pod-1"}, "status": {"phase": "Running"}},
                                 gone=False)

    assert client.writes == ["/apis/dpkube.io/v1alpha1/namespaces/ns/dpqueries/q/status"]
    assert events.reasons == ["PodRunning"]


async def test_a_private_querys_runner_asking_leave_to_read_moves_it_to_running_in_the_same_write() -> None:
    nobody, client, events = Untouchable(), StatusWritesOnly(), Events()
    registry = Registry()
    reconciler = Reconciler(client, registry, events, nobody, nobody, nobody)  # type: ignore[arg-type]
    registry.observe(admitted())
    reconciler.recall.keep(admitted())
    await reconciler.pod_changed("ns", "q", "u1", {"metadata": {"name": "pod-1"}, "status": {"phase": "Running"}},
                                 gone=False)
    assert client.writes == []

    assert await reconciler.allow_read("ns", "u1")

    assert client.writes == ["/apis/dpkube.io/v1alpha1/namespaces/ns/dpqueries/q/status"]
    written = client.statuses[0]
    assert written["phase"] == "Running" and written["dataReadAt"]
    assert {c["type"]: c["status"] for c in written["conditions"]}["DataRead"] == "True"
    assert events.reasons == ["DataRead"]


class AdmittedAtOnce:
    """Every admission reserves the query's cost."""

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Admitted:
        return A.Admitted(Cost(epsilon=0.5, delta=0.0), "digest", Untouchable(), None)  # type: ignore[arg-type]


class OnePod:
    """Runs every query in pod-1: a warm pod that polls already, or a new one."""

    def __init__(self, warm: bool) -> None:
        self.warm = warm

    async def start(self, body: Any, query: Any, dataset: Any = None, queue: Any = None) -> Launched:
        return Launched("pod-1", running=self.warm)

    async def input_for(self, query: Any) -> Any:
        class Input:
            def model_dump(self, **_: Any) -> dict[str, Any]:
                return {"library": "opendp"}

        return Input()


def warm_reconciler(client: StatusWritesOnly, events: Events, warm: bool) -> Reconciler:
    registry = Registry()
    registry.observe(pending())
    return Reconciler(client, registry, events, AdmittedAtOnce(), OnePod(warm), Untouchable())  # type: ignore[arg-type]


def pending(**spec: Any) -> dict[str, Any]:
    body = dpquery("q", **spec)
    body["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "10", "finalizers": [RELEASE_FINALIZER]}
    return body


async def test_a_warm_pods_private_query_is_admitted_with_its_leave_to_read_in_one_write() -> None:
    client, events = StatusWritesOnly(), Events()
    reconciler = warm_reconciler(client, events, warm=True)

    await reconciler.reconcile("ns", "q", pending())

    assert len(client.writes) == 1 and events.reasons == ["Admitted"]
    written = client.statuses[0]
    assert written["phase"] == "Running" and written["dataReadAt"] and written["podName"] == "pod-1"
    assert {c["type"]: c["status"] for c in written["conditions"]}["DataRead"] == "True"


async def test_the_runner_of_a_warm_pods_private_query_is_told_it_may_read_and_asking_again_writes_nothing() -> None:
    client, events = StatusWritesOnly(), Events()
    reconciler = warm_reconciler(client, events, warm=True)
    await reconciler.reconcile("ns", "q", pending())

    handover = await reconciler.input_for("ns", "u1")

    assert handover is not None and handover.read_allowed and handover.input == {"library": "opendp"}
    assert await reconciler.allow_read("ns", "u1")
    assert len(client.writes) == 1


async def test_a_new_pods_private_query_is_admitted_without_the_leave_to_read() -> None:
    client, events = StatusWritesOnly(), Events()
    reconciler = warm_reconciler(client, events, warm=False)
    await reconciler.reconcile("ns", "q", pending())

    handover = await reconciler.input_for("ns", "u1")

    assert client.statuses[0]["phase"] == "Admitted" and "dataReadAt" not in client.statuses[0]
    assert handover is not None and not handover.read_allowed


async def test_a_warm_pods_dummy_query_is_admitted_running_without_the_leave_to_read() -> None:
    client, events = StatusWritesOnly(), Events()
    reconciler = warm_reconciler(client, events, warm=True)

    await reconciler.reconcile("ns", "q", pending(mode="dummy", dummy={"rows": 100, "seed": 42}))

    assert client.statuses[0]["phase"] == "Running" and "dataReadAt" not in client.statuses[0]
    assert not (await reconciler.input_for("ns", "u1")).read_allowed  # type: ignore[union-attr]


async def test_a_pod_event_of_a_query_that_has_ended_does_nothing() -> None:
    nobody = Untouchable()
    registry = Registry()
    ended = admitted()
    ended["status"] = {"phase": "Succeeded", "podName": "pod-1"}
    registry.observe(ended)
    reconciler = Reconciler(nobody, registry, nobody, nobody, nobody, nobody)  # type: ignore[arg-type]

    await reconciler.pod_changed("ns", "q", "u1", {"metadata": {"name": "pod-1"}, "status": {"phase": "Succeeded"}},
                                 gone=False)


class FullGrant:
    """Every admission finds the query's grant with no room for one more query in flight."""

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Waiting:
        return A.Waiting("GrantFull", "as many queries hold this budget as its grant can record", retry=True)


async def test_a_query_whose_grant_is_full_says_so_and_is_tried_again_on_its_backoff() -> None:
    client, events = StatusWritesOnly(), Events()
    reconciler = Reconciler(client, Registry(), events, FullGrant(), Untouchable(), Untouchable())  # type: ignore[arg-type]
    pending = dpquery("q")
    pending["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "10"}

    await reconciler.reconcile("ns", "q", pending)

    assert client.writes == ["/apis/dpkube.io/v1alpha1/namespaces/ns/dpqueries/q/status"]
    assert events.reasons == ["GrantFull"]
    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == {("ns", "q")}


class AskedFor:
    """Records each query it is asked to admit, with its phase; the queue is busy."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Busy:
        self.asked.append((query.name, query.status.phase))
        return A.Busy()


def in_line() -> dict[str, Any]:
    pending = dpquery("q")
    pending["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "12"}
    pending["status"] = {"phase": "Pending", "conditions": [
        {"type": "Admitted", "status": "False", "reason": "WaitingForQueue", "message": "waiting for its turn",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return pending


async def test_a_head_of_an_open_queue_is_admitted_from_the_body_written_when_it_began_to_wait() -> None:
    admission, registry = AskedFor(), Registry()
    reconciler = Reconciler(StatusWritesOnly(), registry, Untouchable(), admission,  # type: ignore[arg-type]
                            Untouchable(), Untouchable())  # type: ignore[arg-type]
    registry.observe(in_line())
    reconciler.recall.wrote(in_line())

    await reconciler.reconcile("ns", "q", remembered=True)

    assert admission.asked == [("q", "Pending")]  # and no read: the client refuses every GET


def test_a_deleted_query_is_forgotten_by_the_registry_and_the_recall() -> None:
    reconciler = Reconciler(Untouchable(), Registry(), Untouchable(), Untouchable(),  # type: ignore[arg-type]
                            Untouchable(), Untouchable())  # type: ignore[arg-type]
    reconciler.registry.observe(in_line())
    reconciler.recall.wrote(in_line())

    reconciler.forget("u1")

    assert reconciler.recall.body("u1") is None and "u1" not in reconciler.registry.entries


class BehindOthers:
    """Every admission finds others ahead of the query in its open queue."""

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Waiting:
        return A.Waiting("WaitingForQueue", "waiting for its turn in queue q")


def new_query() -> dict[str, Any]:
    body = dpquery("q", queue="q")
    body["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": "10"}
    return body


async def test_a_new_query_waiting_for_its_turn_is_not_written_and_its_head_line_takes_it_from_memory() -> None:
    registry = Registry()
    reconciler = Reconciler(Untouchable(), registry, Untouchable(), BehindOthers(),  # type: ignore[arg-type]
                            Untouchable(), Untouchable())  # type: ignore[arg-type]
    registry.observe(new_query())

    await reconciler.reconcile("ns", "q", new_query())

    entry = registry.entries["u1"]
    assert (entry.phase, entry.reason) == ("Pending", "WaitingForQueue")
    assert reconciler.recall.body("u1") is not None


async def test_a_query_waiting_unwritten_is_written_pending_with_its_place_when_the_scheduler_shows_it() -> None:
    client, events, registry = StatusWritesOnly(), Events(), Registry()
    reconciler = Reconciler(client, registry, events, BehindOthers(), Untouchable(),  # type: ignore[arg-type]
                            Untouchable())  # type: ignore[arg-type]
    registry.observe(new_query())
    await reconciler.reconcile("ns", "q", new_query())

    await reconciler.show_place("ns", "q", 7)

    (status,) = client.statuses
    assert status["phase"] == "Pending" and status["queuePosition"] == 7
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Admitted"] == ["WaitingForQueue"]
    assert events.reasons == ["WaitingForQueue"]


async def test_a_query_written_pending_for_another_reason_is_written_when_it_waits_for_its_turn() -> None:
    client, registry = StatusWritesOnly(), Registry()
    reconciler = Reconciler(client, registry, Events(), BehindOthers(), Untouchable(),  # type: ignore[arg-type]
                            Untouchable())  # type: ignore[arg-type]
    locked = new_query()
    locked["status"] = {"phase": "Pending", "conditions": [
        {"type": "Admitted", "status": "False", "reason": "QueueLocked", "message": "queue q is locked",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    registry.observe(locked)

    await reconciler.reconcile("ns", "q", locked)

    assert [c["reason"] for c in client.statuses[0]["conditions"] if c["type"] == "Admitted"] == ["WaitingForQueue"]


class GatedAdmission:
    """Records the timeout of each query it is asked about; the first admission waits for the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked: list[str | None] = []

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Busy:
        self.asked.append(query.spec.timeout)
        if len(self.asked) == 1:
            await self.gate.wait()
        return A.Busy()


def event_of(generation: int, timeout: str) -> dict[str, Any]:
    body = dpquery("q", timeout=timeout)
    body["metadata"] |= {"uid": "u1", "namespace": "ns", "resourceVersion": str(10 + generation),
                         "generation": generation, "managedFields": [{"manager": "kubectl"}]}
    return body


async def test_a_watch_events_step_runs_after_the_event_handler_returned() -> None:
    nobody, admission = Untouchable(), GatedAdmission()
    reconciler = Reconciler(nobody, Registry(), nobody, admission, nobody, nobody)  # type: ignore[arg-type]

    reconciler.reconcile_soon("ns", "q", event_of(1, "10s"))
    assert admission.asked == []
    await asyncio.sleep(0.01)

    assert admission.asked == ["10s"]
    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == set()  # still under way
    admission.gate.set()
    await asyncio.sleep(0.01)
    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == {("ns", "q")}


async def test_the_steps_of_one_querys_events_run_one_at_a_time_in_the_order_the_events_came() -> None:
    nobody, admission = Untouchable(), GatedAdmission()
    reconciler = Reconciler(nobody, Registry(), nobody, admission, nobody, nobody)  # type: ignore[arg-type]

    reconciler.reconcile_soon("ns", "q", event_of(1, "10s"))
    reconciler.reconcile_soon("ns", "q", event_of(2, "20s"))
    await asyncio.sleep(0.01)
    assert admission.asked == ["10s"]  # the second waits for the first step's lock
    admission.gate.set()
    await asyncio.sleep(0.01)

    assert admission.asked == ["10s", "20s"]


async def test_a_step_still_running_past_the_shutdown_grace_is_cancelled() -> None:
    nobody, admission = Untouchable(), GatedAdmission()
    reconciler = Reconciler(nobody, Registry(), nobody, admission, nobody, nobody)  # type: ignore[arg-type]
    reconciler.reconcile_soon("ns", "q", event_of(1, "10s"))
    await asyncio.sleep(0.01)

    await asyncio.wait_for(reconciler.stop(grace=0.05), 1.0)

    assert admission.asked == ["10s"]
    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == set()


class HeldQueueAdmission:
    """Records the queries it is asked about; those of the queue `held` wait for the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked: list[str] = []

    async def decide(self, query: Any, ensure_finalizer: Any) -> A.Busy:
        self.asked.append(query.name)
        if query.spec.queue == "held":
            await self.gate.wait()
        return A.Busy()


def queued_event(name: str, uid: str, queue: str | None, user: str = "alice") -> dict[str, Any]:
    body = dpquery(name, user, queue=queue)
    body["metadata"] |= {"uid": uid, "namespace": "ns", "resourceVersion": "10"}
    return body


def with_backlog(admission: HeldQueueAdmission, per_flow: int, count: int) -> Reconciler:
    """A reconciler whose flows run `per_flow` steps at once, handed events of `count` of alice's queries in `held`."""
    nobody = Untouchable()
    reconciler = Reconciler(nobody, Registry(), nobody, admission, nobody, nobody)  # type: ignore[arg-type]
    reconciler.flows = Flows(per_flow=per_flow)
    for n in range(count):
        reconciler.reconcile_soon("ns", f"backlog-{n}", queued_event(f"backlog-{n}", f"b{n}", "held"))
    return reconciler


async def test_one_users_backlog_in_a_queue_holds_up_neither_their_query_elsewhere_nor_another_users() -> None:
    admission = HeldQueueAdmission()
    reconciler = with_backlog(admission, per_flow=2, count=5)
    reconciler.reconcile_soon("ns", "elsewhere", queued_event("elsewhere", "e1", "other"))
    reconciler.reconcile_soon("ns", "no-queue", queued_event("no-queue", "n1", None))
    reconciler.reconcile_soon("ns", "bobs", queued_event("bobs", "o1", "held", user="bob"))
    await asyncio.sleep(0.01)

    assert sorted(admission.asked) == ["backlog-0", "backlog-1", "bobs", "elsewhere", "no-queue"]
    admission.gate.set()
    await asyncio.sleep(0.01)
    assert len(admission.asked) == 8


async def test_at_shutdown_running_steps_may_end_and_waiting_ones_do_not_start() -> None:
    admission = HeldQueueAdmission()
    reconciler = with_backlog(admission, per_flow=1, count=3)
    await asyncio.sleep(0.01)

    stopping = asyncio.ensure_future(reconciler.stop(grace=1.0))
    await asyncio.sleep(0.01)
    admission.gate.set()
    await stopping

    assert admission.asked == ["backlog-0"]
    assert reconciler.recall.due_retries(time.monotonic() + RETRY_FIRST_SECONDS) == {("ns", "backlog-0")}
