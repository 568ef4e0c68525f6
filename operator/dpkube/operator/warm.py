"""Warm runner pools: pre-started pods that have imported the DP libraries, each claiming one query.

A warm pod long-polls the operator's claim endpoint with a per-pod token. To give it a query the
operator (1) labels the pod with the query's uid, conditioned on the pod's resourceVersion, so no
two queries can take one pod; (2) records the pod in the query's status; (3) answers the pod's poll
with the runner input. A pod never gets a second query: the runner exits after one. After a crash
the label and the status say which query a pod holds, and its next poll gets that same query.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.models.queue import QueueSpec
from dpkube.operator.pods import QUERY_UID_LABEL, WARM_POOL_LABEL, owner_reference, query_labels, warm_pod
from dpkube.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 25.0

InputFor = Callable[[str, str], Awaitable[dict[str, Any] | None]]
"""(namespace, query uid) -> the runner input (JSON-ready) of that query, or None if it is gone."""


class WarmPools:
    """Keeps each (queue, namespace) pool at its size and hands claimed queries to polling pods."""

    def __init__(self, client: KubeClient, settings: OperatorSettings):
        self.client = client
        self.settings = settings
        self.input_for: InputFor | None = None
        self.ensure_access: Callable[[str], Awaitable[None]] | None = None
        self._tokens: dict[tuple[str, str], str] = {}
        self._polling: dict[tuple[str, str], asyncio.Event] = {}
        self._claimed: set[tuple[str, str]] = set()
        self._pool_of: dict[tuple[str, str], str] = {}

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

    async def _keep_pool(self, queue_name: str, namespace: str, spec: QueueSpec) -> None:
        pods = await self.client.list(core_path("pods", namespace),
                                      label_selector=f"{WARM_POOL_LABEL}={queue_name},!{QUERY_UID_LABEL}")
        idle = [p for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") in (None, "Pending", "Running")]
        if len(idle) < spec.warm_pods and self.ensure_access is not None:
            await self.ensure_access(namespace)
        for _ in range(spec.warm_pods - len(idle)):
            await self._create(queue_name, namespace, spec)
        for extra in idle[spec.warm_pods:]:
            await self._delete(namespace, extra["metadata"]["name"])

    async def _create(self, queue_name: str, namespace: str, spec: QueueSpec) -> None:
        name = f"dpq-warm-{queue_name[:30]}-{secrets.token_hex(4)}"
        token = secrets.token_urlsafe(24)
        manifest = warm_pod(name, namespace, queue_name, token, self.settings.claim_url, self.settings, spec)
        await self.client.create(core_path("pods", namespace), manifest)
        self._tokens[(namespace, name)] = token

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(core_path("pods", namespace, name), grace_seconds=0)
        except NotFound:
            pass

    # -- claiming (called by the reconciler) ---------------------------------------------------

    def ready(self, queue_name: str, namespace: str) -> list[str]:
        """Warm pods of the pool that are polling right now (libraries imported)."""
        return [pod for (ns, pod), event in self._polling.items()
                if ns == namespace and self._pool_of.get((ns, pod)) == queue_name
                and (ns, pod) not in self._claimed and not event.is_set()]

    def ready_count(self, queue_name: str) -> int:
        """Polling, unclaimed pods of a queue's pools, in every namespace."""
        return sum(1 for key, event in self._polling.items()
                   if self._pool_of.get(key) == queue_name and key not in self._claimed and not event.is_set())

    async def claim(self, query: dict[str, Any], queue_name: str) -> str | None:
        """Take a polling pod of the queue's pool for this query; None when none is ready."""
        namespace = query["metadata"]["namespace"]
        for name in self.ready(queue_name, namespace):
            try:
                pod = await self.client.get(core_path("pods", namespace, name))
            except NotFound:
                continue
            if QUERY_UID_LABEL in (pod["metadata"].get("labels") or {}):
                continue
            try:
                await self.client.patch(core_path("pods", namespace, name), {"metadata": {
                    "resourceVersion": pod["metadata"]["resourceVersion"],
                    "labels": query_labels(query),
                    "ownerReferences": [owner_reference(query)],
                }})
            except (Conflict, NotFound):
                continue
            self._claimed.add((namespace, name))
            return name
        return None

    def deliver(self, namespace: str, pod: str) -> None:
        """Wake the pod's poll: its query is recorded, it may now be handed the input."""
        event = self._polling.get((namespace, pod))
        if event is not None:
            event.set()

    # -- the claim endpoint (polled by warm runners) -------------------------------------------

    async def _token_of(self, namespace: str, pod: str) -> tuple[str | None, dict[str, Any] | None]:
        try:
            body = await self.client.get(core_path("pods", namespace, pod))
        except NotFound:
            return None, None
        env = {e["name"]: e.get("value") for e in body["spec"]["containers"][0].get("env", [])}
        return env.get("DPKUBE_CLAIM_TOKEN"), body

    async def handle_claim(self, request: web.Request) -> web.Response:
        try:
            ask = await request.json()
            namespace, pod, token = str(ask["namespace"]), str(ask["pod"]), str(ask["token"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected {namespace, pod, token}"}, status=400)
        expected, body = await self._token_of(namespace, pod)
        if body is None or expected is None or not secrets.compare_digest(expected, token):
            return web.json_response({"error": "unknown pod or token"}, status=403)
        key = (namespace, pod)
        labels = body["metadata"].get("labels") or {}
        self._pool_of[key] = labels.get(WARM_POOL_LABEL, "")
        uid = labels.get(QUERY_UID_LABEL)
        if uid is None:
            event = self._polling.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), POLL_SECONDS)
            except TimeoutError:
                return web.Response(status=204)
            finally:
                self._polling.pop(key, None)
            _, body = await self._token_of(namespace, pod)
            uid = ((body or {}).get("metadata", {}).get("labels") or {}).get(QUERY_UID_LABEL)
            if uid is None:
                return web.Response(status=204)
        assert self.input_for is not None
        runner_input = await self.input_for(namespace, uid)
        if runner_input is None:
            return web.json_response({"error": "the claimed query is gone"}, status=410)
        self._claimed.discard(key)
        self._pool_of.pop(key, None)
        return web.json_response({"uid": uid, "input": runner_input})

    async def serve(self, healthy: Callable[[], bool] | None = None) -> web.AppRunner:
        """Serve the claim endpoint, and `/healthz` (503 when the operator's loop has stalled)."""

        async def healthz(_: web.Request) -> web.Response:
            ok = healthy is None or healthy()
            return web.json_response({"ok": ok}, status=200 if ok else 503)

        app = web.Application()
        app.router.add_post("/claim", self.handle_claim)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = self.settings.claim_listen.rpartition(":")
        await web.TCPSite(runner, host, int(port)).start()
        return runner
