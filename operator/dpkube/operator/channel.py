"""The claim channel: the only way a runner pod talks to the platform.

A pod proves who it is with the secret the operator wrote into its environment, and speaks only for
the query whose uid labels it: it claims that query's input (`/claim`, long-polled by warm pods),
asks leave before it reads the private data (`/read`: the operator records that in the query's
status first, so everything after is charged; a warm pod's claim says the admission recorded it already),
and hands in its output (`/result`: answered only
once the query has ended as the output says). Pods have no API-server access, so a pod can never
deliver another query's result.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from dpkube.k8s.client import KubeClient, NotFound, core_path
from dpkube.k8s.pods import QUERY_UID_LABEL, WARM_POOL_LABEL, claim_token
from dpkube.models.runner import RunnerOutput
from dpkube.operator.podkeys import PodKey, PodKeys
from dpkube.operator.warm import WarmPools

log = logging.getLogger(__name__)
POLL_SECONDS = 25.0
CLOSE_SECONDS = 5.0
"""How long requests still running may take when the operator stops (a runner sends again what was cut short,
to whichever operator leads next: every step is idempotent)."""


class NotReady(Exception):
    """The pod's query is not admitted yet: the runner should ask again shortly."""


@dataclass(frozen=True)
class Handover:
    """What a claiming runner gets: its query's input, and whether its leave to read is recorded already (a
    warm pod's private query gets it with its admission, so the runner need not ask)."""

    input: dict[str, Any]
    read_allowed: bool


class Queries(Protocol):
    """What the channel asks of the reconciler, each for one query identified by namespace and uid."""

    async def input_for(self, namespace: str, uid: str) -> Handover | None: ...
    async def allow_read(self, namespace: str, uid: str) -> bool: ...
    async def deliver(self, namespace: str, uid: str, output: RunnerOutput) -> bool: ...


class Channel:
    """Serves runner pods; every answer is for the authenticated pod's own query only."""

    def __init__(self, client: KubeClient, queries: Queries, warm: WarmPools | None, keys: PodKeys,
                 max_result_bytes: int) -> None:
        self.client = client
        self.queries = queries
        self.warm = warm
        self.keys = keys
        self.max_result_bytes = max_result_bytes

    async def _pod(self, request: web.Request) -> tuple[PodKey, str, str] | web.Response:
        """The calling pod's key (its secret and query), namespace and name, or the refusal to send."""
        try:
            ask = await request.json()
            namespace, name, token = str(ask["namespace"]), str(ask["pod"]), str(ask["token"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected {namespace, pod, token}"}, status=400)
        key = self.keys.get(namespace, name) or await self._read_key(namespace, name)
        if key is None or not secrets.compare_digest(key.token, token):
            return web.json_response({"error": "unknown pod or token"}, status=403)
        request["ask"] = ask
        return key, namespace, name

    async def _read_key(self, namespace: str, name: str) -> PodKey | None:
        """A pod this process knows nothing of (made before a restart): its key, from the pod itself."""
        try:
            pod = await self.client.get(core_path("pods", namespace, name))
        except NotFound:
            return None
        token = claim_token(pod)
        if token is None:
            return None
        uid = (pod["metadata"].get("labels") or {}).get(QUERY_UID_LABEL)
        self.keys.remember(namespace, name, token, uid)
        if uid is None and self.warm is not None:
            self.warm.adopt(namespace, name, (pod["metadata"].get("labels") or {}).get(WARM_POOL_LABEL, ""))
        return self.keys.get(namespace, name)

    async def claim(self, request: web.Request) -> web.Response:
        found = await self._pod(request)
        if isinstance(found, web.Response):
            return found
        key, namespace, name = found
        uid = key.uid
        if uid is None:
            if self.warm is None or not await self.warm.wait_for_query(namespace, name, POLL_SECONDS):
                return web.Response(status=204)
            uid = key.uid
            if uid is None:
                return web.Response(status=204)
        try:
            handover = await self.queries.input_for(namespace, uid)
        except NotReady:
            return web.Response(status=204)
        if handover is None:
            return web.json_response({"error": "the query is gone or has ended"}, status=410)
        if self.warm is not None:
            self.warm.handed_over(namespace, name)
        return web.json_response({"uid": uid, "input": handover.input, "readAllowed": handover.read_allowed})

    async def read(self, request: web.Request) -> web.Response:
        return await self._for_query(request, lambda ns, uid: self.queries.allow_read(ns, uid))

    async def result(self, request: web.Request) -> web.Response:
        async def deliver(namespace: str, uid: str) -> bool:
            try:
                output = RunnerOutput.model_validate(request["ask"].get("output"))
            except ValidationError:
                log.warning("unreadable runner output for query %s", uid)
                output = RunnerOutput.model_validate(
                    {"ok": False, "error": {"kind": "internal", "message": "unreadable runner output"}})
            try:
                return await self.queries.deliver(namespace, uid, output)
            finally:
                if self.warm is not None:
                    self.warm.ran(uid)

        return await self._for_query(request, deliver)

    async def _for_query(self, request: web.Request, act: Callable[[str, str], Awaitable[bool]]) -> web.Response:
        found = await self._pod(request)
        if isinstance(found, web.Response):
            return found
        key, namespace, _ = found
        uid = key.uid
        if uid is None:
            return web.json_response({"error": "this pod holds no query"}, status=409)
        if not await act(namespace, uid):
            return web.json_response({"error": "the query is gone or has ended"}, status=410)
        return web.json_response({})

    async def serve(self, listen: str, healthy: Callable[[], bool] | None = None) -> web.AppRunner:
        """Serve the channel on `listen` (host:port), and `/healthz` (503 when the operator's loop stalled)."""

        async def healthz(_: web.Request) -> web.Response:
            ok = healthy is None or healthy()
            return web.json_response({"ok": ok}, status=200 if ok else 503)

        app = web.Application(client_max_size=self.max_result_bytes)
        app.router.add_post("/claim", self.claim)
        app.router.add_post("/read", self.read)
        app.router.add_post("/result", self.result)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = listen.rpartition(":")
        await web.TCPSite(runner, host, int(port), shutdown_timeout=CLOSE_SECONDS).start()
        return runner
