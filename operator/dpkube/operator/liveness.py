"""`GET /livez` for every replica, leader or standby: a process whose event loop or election loop is stuck
is restarted. Readiness stays the claim server's `/healthz`, which only the leader serves. `/metrics` is
the operator's counters (Prometheus text)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dpkube.operator.metrics import REGISTRY


async def serve_liveness(listen: str, alive: Callable[[], bool] = lambda: True) -> web.AppRunner:
    """Serve `/livez` on `listen` (host:port): 200 while `alive()`, 503 otherwise; no answer if the loop hangs."""

    async def livez(_: web.Request) -> web.Response:
        ok = alive()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    await web.TCPSite(runner, host, int(port)).start()
    return runner
