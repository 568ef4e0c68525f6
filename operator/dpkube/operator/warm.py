"""Warm runner pools: pre-started pods that have imported the DP libraries, each claiming one query.

A warm pod long-polls the claim channel with a secret of its own. To give it a query the operator
(1) labels the pod with the query's uid, conditioned on the pod's resourceVersion, so no two queries
can take one pod; (2) wakes the pod's poll, which then gets that query's input. A pod never gets a
second query: the runner exits after one. After a crash the label says which query a pod holds, and
its next poll gets that same query.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from typing import Any

from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
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
CLAIM_ATTEMPTS = 3
"""Reads and conditioned writes a claim tries on one pod whose version keeps moving."""
REPOLL_GRACE = 5.0
"""Seconds an idle pod still counts as ready after its poll timed out: it polls again at once, and a claim
made in between reaches it on that next poll (its key then names the query)."""


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
        self._listed: dict[tuple[str, str], str] = {}
        """Each idle pod's resourceVersion in its pool's last listing: a claim tries it before reading the pod."""

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
        pods = await self.client.list(core_path("pods", namespace),
                                      label_selector=f"{WARM_POOL_LABEL}={queue_name},!{QUERY_UID_LABEL}")
        idle = [p for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") in (None, "Pending", "Running")]
        for key in [k for k in self._listed if k[0] == namespace and self._pool_of.get(k) == queue_name]:
            del self._listed[key]
        self._listed.update({(namespace, p["metadata"]["name"]): p["metadata"]["resourceVersion"] for p in idle})
        wanted = self.size(queue_name, spec, time.monotonic())
        ready = set(self.ready(queue_name, namespace))
        warming = sum(1 for p in idle if p["metadata"]["name"] not in ready)
        starts = pods_to_start(wanted, len(idle), warming, self.settings.warm_starts_per_pool)
        if starts and self.isolate is not None:
            await self.isolate(namespace)
        for _ in range(starts):
            await self._create(queue_name, namespace, spec)
        for extra in idle[wanted:]:
            await self._delete(namespace, extra["metadata"]["name"])

    async def _create(self, queue_name: str, namespace: str, spec: QueueSpec) -> None:
        name = f"dpq-warm-{queue_name[:30]}-{secrets.token_hex(4)}"
        libraries = (",".join(library.value for library in spec.warm_libraries)
                     or RunnerSettings.model_fields["libraries"].default)
        runner = RunnerSettings.for_pod(self.settings.claim_url, secrets.token_urlsafe(24), libraries)
        manifest = warm_pod(name, namespace, queue_name, runner, self.settings.pod_template(), spec)
        await self.client.create(core_path("pods", namespace), manifest, answer=False)
        self.keys.remember(namespace, name, runner.claim_token, None)
        self._pool_of[(namespace, name)] = queue_name

    async def _delete(self, namespace: str, name: str) -> None:
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

    async def claim(self, query: dict[str, Any], queue_name: str) -> str | None:
        """Take a polling pod of the queue's pool for this query; None when none is ready."""
        namespace = query["metadata"]["namespace"]
        for name in self.ready(queue_name, namespace):
            if not await self._label(namespace, name, query):
                continue
            self._claimed.add((namespace, name))
            self.keys.claimed(namespace, name, query["metadata"]["uid"])
            self._claims[queue_name].append(time.monotonic())
            return name
        return None

    async def _label(self, namespace: str, name: str, query: dict[str, Any]) -> bool:
        """Label the pod with the query, conditioned on its version: first the version its pool's last listing
        showed (idle, alive, unclaimed then; still so if that version is still current), then, on a conflict,
        the version read again, since its node writing its status moves the version too, and only a query
        label means another query took it."""
        version = self._listed.pop((namespace, name), None)
        for _ in range(CLAIM_ATTEMPTS):
            if version is None:
                try:
                    pod = await self.client.get(core_path("pods", namespace, name))
                except NotFound:
                    return False
                if (QUERY_UID_LABEL in (pod["metadata"].get("labels") or {})
                        or pod["metadata"].get("deletionTimestamp")
                        or (pod.get("status") or {}).get("phase") in ENDED_POD_PHASES):
                    return False  # a pod that polls is alive even while its node has not yet written it Running
                version = pod["metadata"]["resourceVersion"]
            try:
                await self.client.patch(core_path("pods", namespace, name), {"metadata": {
                    "resourceVersion": version,
                    "labels": query_labels(query),
                    "ownerReferences": [owner_reference(query)],
                }})
                return True
            except NotFound:
                return False
            except Conflict:
                version = None
        return False

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
        self._pool_of.pop((namespace, pod), None)


def pods_to_start(wanted: int, idle: int, warming: int, at_once: int) -> int:
    """Warm pods a pool starts now: up to the idle pods it wants, while at most `at_once` are still importing."""
    return max(0, min(wanted - idle, at_once - warming))
