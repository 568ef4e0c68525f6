"""Warm runner pools: pre-started pods that have imported the DP libraries, each claiming one query.

A warm pod long-polls the claim channel with a secret of its own. To give it a query the operator
(1) labels the pod with the query's uid, by a JSON patch that first tests the pod's labels are still those
of an unclaimed pod, so no two queries can take one pod (the API server applies the test and the label
at once); (2) wakes the pod's poll, which then gets that query's input. A pod never gets a second query:
the runner exits after one. After a crash the label says which query a pod holds, and its next poll gets
that same query.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from typing import Any

from dpkube.k8s.client import Invalid, KubeClient, NotFound, core_path
from dpkube.k8s.pods import QUERY_UID_LABEL, WARM_POOL_LABEL, owner_reference, query_labels, warm_pod
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import RunnerSettings
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.settings import OperatorSettings

log = logging.getLogger(__name__)
DEMAND_WINDOW = 60.0
"""Seconds of claims a pool's size follows: busy, it grows by its recent claims; idle, back to its floor."""
ENDED_POD_PHASES = frozenset({"Succeeded", "Failed"})
"""A pod in one of these can no longer run a query, whatever its last poll said."""
REPOLL_GRACE = 5.0
"""Seconds an idle pod still counts as ready after its poll timed out: it polls again at once, and a claim
made in between reaches it on that next poll (its key then names the query)."""
REFILL_AFTER_RUN_SECONDS = 0.5
"""At most how long a claimed pod's replacement waits for that pod's query to have run, while another pod of
the pool is idle for the next query: a pod starting (its writes, its fork, its page copy) takes the node's
cores from the query it would replace."""
WARMING_SECONDS = 120.0
"""How long a pod this process started counts as warming before its first poll: a refill waits for warming
pods, and one that never polls (its node failed it) must not hold the refills back for ever."""


class WarmPools:
    """Keeps each (queue, namespace) pool at its size and knows which warm pods are polling right now."""

    def __init__(self, client: KubeClient, settings: OperatorSettings, keys: PodKeys, isolate: Any = None):
        self.client = client
        self.settings = settings
        self.keys = keys
        self.isolate = isolate
        """`await isolate(namespace)` before the first pod of a namespace (its NetworkPolicy)."""
        self._polling: dict[tuple[str, str], asyncio.Event] = {}
        self._between_polls: dict[tuple[str, str], float] = {}
        """When an idle pod's last poll timed out, until it polls again."""
        self._claims: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        """When each queue's warm pods were claimed, over the last DEMAND_WINDOW seconds."""
        self._claimed: set[tuple[str, str]] = set()
        self._pool_of: dict[tuple[str, str], str] = {}
        self._labels: dict[tuple[str, str], dict[str, str]] = {}
        """Each unclaimed pod's labels, as this process made it or its pool's last listing showed it: what a
        claim tests before it labels the pod, without reading it."""
        self._warming: dict[tuple[str, str], float] = {}
        """Pods this process started that have not polled yet, and when they were started."""
        self._refills: set[asyncio.Task[None]] = set()
        self._runs: dict[str, asyncio.Event] = {}
        """By query uid: claimed pods whose replacement waits for their query to have run."""
        self._stopping = False

    # -- pool upkeep (called by the scheduler) -------------------------------------------------

    async def maintain(self, queues: dict[str, dict[str, Any]], namespaces: set[str]) -> None:
        """Create warm pods up to each queue's warmPods in every namespace that queries from it."""
        for queue_name, raw in queues.items():
            spec = QueueSpec.model_validate(raw)
            for namespace in namespaces:
                try:
                    await self._keep_pool(queue_name, namespace, spec)
                except NotFound:
                    continue  # the namespace does not exist (yet)

    def size(self, queue_name: str, spec: QueueSpec, now: float) -> int:
        """The idle pods a pool should keep: its floor, plus as many as were claimed in the last
        DEMAND_WINDOW seconds, up to its ceiling."""
        claims = self._claims[queue_name]
        while claims and claims[0] < now - DEMAND_WINDOW:
            claims.popleft()
        ceiling = spec.warm_pods if spec.warm_pods_max is None else max(spec.warm_pods, spec.warm_pods_max)
        return min(ceiling, spec.warm_pods + len(claims))

    async def _keep_pool(self, queue_name: str, namespace: str, spec: QueueSpec) -> None:
        listed_at = time.monotonic()
        pods = await self.client.list(core_path("pods", namespace),
                                      label_selector=f"{WARM_POOL_LABEL}={queue_name},!{QUERY_UID_LABEL}")
        idle = [p for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") in (None, "Pending", "Running")]
        self._take_listing(queue_name, namespace, idle, listed_at)
        wanted = self.size(queue_name, spec, time.monotonic())
        starts = self._starts(queue_name, namespace, wanted)
        if starts and self.isolate is not None:
            await self.isolate(namespace)
        for _ in range(starts):
            await self._create(queue_name, namespace, spec)
        for extra in idle[wanted:]:
            await self._delete(namespace, extra["metadata"]["name"])

    def _take_listing(self, queue_name: str, namespace: str, idle: list[dict[str, Any]], listed_at: float) -> None:
        """What the pool's listing says: its unclaimed pods and their labels, and which of them still warm (not
        polling: started by an earlier process, or importing). A pod this process started before the listing,
        and missing from it, went before it ever polled."""
        names = {p["metadata"]["name"] for p in idle}
        for key in [key for key, pool in self._pool_of.items() if pool == queue_name and key[0] == namespace]:
            if key[1] in names:
                continue
            if self._warming.get(key, listed_at) < listed_at:
                del self._warming[key]
            if key not in self._warming:
                self._labels.pop(key, None)
        ready = set(self.ready(queue_name, namespace))
        for pod in idle:
            key = (namespace, pod["metadata"]["name"])
            self._labels[key] = pod["metadata"].get("labels") or {}
            self._pool_of.setdefault(key, queue_name)
            if key[1] not in ready:
                self._warming.setdefault(key, listed_at)

    def _starts(self, queue_name: str, namespace: str, wanted: int) -> int:
        """Pods the pool should start now, from what this process knows of it: its ready and its warming pods."""
        warming = self.warming(queue_name, namespace)
        return pods_to_start(wanted, len(self.ready(queue_name, namespace)) + warming, warming,
                             self.settings.warm_starts_per_pool)

    async def _create(self, queue_name: str, namespace: str, spec: QueueSpec) -> None:
        name = f"dpq-warm-{queue_name[:30]}-{secrets.token_hex(4)}"
        libraries = (",".join(library.value for library in spec.warm_libraries)
                     or RunnerSettings.model_fields["libraries"].default)
        runner = RunnerSettings.for_pod(self.settings.claim_url, secrets.token_urlsafe(24), libraries)
        manifest = warm_pod(name, namespace, queue_name, runner, self.settings.pod_template(), spec)
        self.keys.remember(namespace, name, runner.claim_token, None)
        self._pool_of[(namespace, name)] = queue_name
        self._labels[(namespace, name)] = manifest["metadata"]["labels"]
        self._warming[(namespace, name)] = time.monotonic()
        try:
            await self.client.create(core_path("pods", namespace), manifest, answer=False)
        except BaseException:
            self._forget(namespace, name)
            raise

    async def _delete(self, namespace: str, name: str) -> None:
        self._forget(namespace, name)
        try:
            await self.client.delete(core_path("pods", namespace, name), grace_seconds=0)
        except NotFound:
            pass

    # -- claiming (called by the launcher) -----------------------------------------------------

    def ready(self, queue_name: str, namespace: str) -> list[str]:
        """Unclaimed warm pods of the pool that are polling right now (libraries imported), then those about
        to poll again."""
        return [pod for (ns, pod) in self._idle(queue_name) if ns == namespace]

    def ready_count(self, queue_name: str) -> int:
        """Ready pods of a queue's pools, in every namespace."""
        return len(self._idle(queue_name))

    def _idle(self, queue_name: str, now: float | None = None) -> list[tuple[str, str]]:
        now = time.monotonic() if now is None else now
        for key in [key for key, since in self._between_polls.items() if now - since >= REPOLL_GRACE]:
            del self._between_polls[key]  # it did not poll again: gone, or stuck
        polling = [key for key, event in self._polling.items() if not event.is_set()]
        between = list(self._between_polls)
        return [key for key in polling + between if self._pool_of.get(key) == queue_name and key not in self._claimed]

    async def claim(self, query: dict[str, Any], queue_name: str, spec: QueueSpec) -> str | None:
        """Take a polling pod of the queue's pool for this query; None when none is ready. A pod claimed is
        replaced (`refill_soon`): once its query has run while another pod of the pool is idle, else at once."""
        namespace = query["metadata"]["namespace"]
        for name in self.ready(queue_name, namespace):
            if (namespace, name) in self._claimed:
                continue  # another query took it while this one tried the pods before it
            self._claimed.add((namespace, name))  # no other claim of this process tries it meanwhile
            if not await self._label(namespace, name, query):
                self._claimed.discard((namespace, name))
                continue
            self.keys.claimed(namespace, name, query["metadata"]["uid"])
            self._claims[queue_name].append(time.monotonic())
            idle_left = bool(self._idle(queue_name))  # then the next query has a pod: the refill may wait
            self.refill_soon(queue_name, namespace, spec, after=query["metadata"]["uid"] if idle_left else None)
            return name
        return None

    def warming(self, queue_name: str, namespace: str, now: float | None = None) -> int:
        """Pods of the pool this process started that have not polled yet (started within WARMING_SECONDS)."""
        now = time.monotonic() if now is None else now
        for key in [key for key, since in self._warming.items() if now - since >= WARMING_SECONDS]:
            del self._warming[key]
        return sum(1 for key in self._warming if key[0] == namespace and self._pool_of.get(key) == queue_name)

    def refill_soon(self, queue_name: str, namespace: str, spec: QueueSpec, after: str | None = None) -> None:
        """Start a pod in place of one just claimed, as a task of its own, so that a user's next query finds a
        polling pod rather than waiting for the next upkeep; within the pool's size and its starts at once.
        With `after` (the claiming query's uid) it first waits, up to REFILL_AFTER_RUN_SECONDS, for `ran(after)`."""
        if self._stopping or not self._may_start(queue_name, namespace, spec):
            return
        if after is not None:
            self._runs.setdefault(after, asyncio.Event())
        task = asyncio.get_running_loop().create_task(self._refill(queue_name, namespace, spec, after))
        self._refills.add(task)
        task.add_done_callback(self._refilled)

    def _may_start(self, queue_name: str, namespace: str, spec: QueueSpec) -> bool:
        return self._starts(queue_name, namespace, self.size(queue_name, spec, time.monotonic())) > 0

    async def _refill(self, queue_name: str, namespace: str, spec: QueueSpec, after: str | None) -> None:
        if after is not None:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._runs[after].wait(), REFILL_AFTER_RUN_SECONDS)
            finally:
                self._runs.pop(after, None)
            if self._stopping or not self._may_start(queue_name, namespace, spec):
                return  # the pool was refilled meanwhile (its upkeep, another claim's refill)
        await self._create(queue_name, namespace, spec)

    def ran(self, uid: str) -> None:
        """The runner of query `uid` reported its outcome: a replacement waiting for that may start."""
        event = self._runs.get(uid)
        if event is not None:
            event.set()

    def _refilled(self, task: asyncio.Task[None]) -> None:
        self._refills.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("a warm pod could not be started in place of a claimed one (the upkeep tries again): %s",
                        error)

    async def stop(self) -> None:
        """Shutdown: every held poll is answered at once and no new one is held (its pod polls again, whichever
        operator then leads), and refills still starting are cancelled (the next upkeep refills)."""
        self._stopping = True
        for event in self._polling.values():
            event.set()
        for task in list(self._refills):
            task.cancel()
        await asyncio.gather(*self._refills, return_exceptions=True)

    async def _label(self, namespace: str, name: str, query: dict[str, Any]) -> bool:
        """Label the pod with the query, if its labels are still those of an unclaimed pod and it is not being
        deleted: the labels this process knows of it, else those read now (a pod made before a restart). The
        test, not the pod's resourceVersion, is the condition: its node writing its status moves the version but
        takes nothing from the pool."""
        labels = self._labels.pop((namespace, name), None)
        if labels is None:
            try:
                pod = await self.client.get(core_path("pods", namespace, name))
            except NotFound:
                return False
            labels = pod["metadata"].get("labels") or {}
            if (pod["metadata"].get("deletionTimestamp")
                    or (pod.get("status") or {}).get("phase") in ENDED_POD_PHASES):
                return False  # a pod that polls is alive even while its node has not yet written it Running
        if QUERY_UID_LABEL in labels:
            return False
        try:
            await self.client.patch(core_path("pods", namespace, name), claim_patch(labels, query), kind="json")
        except (NotFound, Invalid):  # gone, being deleted, or its labels changed: another query took it
            return False
        return True

    def _forget(self, namespace: str, name: str) -> None:
        """A pod the pool no longer counts on (handed its query, deleted as one too many, or never created)."""
        key = (namespace, name)
        for known in (self._warming, self._labels, self._pool_of):
            known.pop(key, None)

    def deliver(self, namespace: str, pod: str) -> None:
        """Wake the pod's poll: its query is recorded, it may now be handed the input."""
        event = self._polling.get((namespace, pod))
        if event is not None:
            event.set()

    # -- polls (called by the claim channel) ---------------------------------------------------

    def adopt(self, namespace: str, pod: str, pool: str) -> None:
        """A warm pod made before this process started: it belongs to `pool`."""
        self._pool_of[(namespace, pod)] = pool

    async def wait_for_query(self, namespace: str, pod: str, seconds: float) -> bool:
        """Hold an idle warm pod's poll until a query claims it (True) or `seconds` pass (False)."""
        key = (namespace, pod)
        self._between_polls.pop(key, None)
        self._warming.pop(key, None)
        if self._stopping:
            return False
        event = self._polling.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), seconds)
            return True
        except TimeoutError:
            self._between_polls[key] = time.monotonic()
            return False
        finally:
            self._polling.pop(key, None)

    def handed_over(self, namespace: str, pod: str) -> None:
        """The pod got its query's input: it is no pool's any more."""
        self._claimed.discard((namespace, pod))
        self._between_polls.pop((namespace, pod), None)
        self._forget(namespace, pod)


def claim_patch(labels: dict[str, str], query: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch that gives an unclaimed pod with these `labels` to `query`; the API server refuses it (422)
    if the pod's labels changed or it is being deleted (a test for null passes only on a missing field)."""
    return [{"op": "test", "path": "/metadata/deletionTimestamp", "value": None},
            {"op": "test", "path": "/metadata/labels", "value": labels},
            {"op": "replace", "path": "/metadata/labels", "value": {**labels, **query_labels(query)}},
            {"op": "add", "path": "/metadata/ownerReferences", "value": [owner_reference(query)]}]


def pods_to_start(wanted: int, idle: int, warming: int, at_once: int) -> int:
    """Warm pods a pool starts now: up to the idle pods it wants, while at most `at_once` are still importing."""
    return max(0, min(wanted - idle, at_once - warming))
