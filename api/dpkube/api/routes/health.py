"""Liveness, readiness and metrics endpoints (unauthenticated, outside the Lomas API)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process serves requests."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready once the caches have synced with the API server (or run without caches) and the worker pool has
    started (its workers import the DP libraries)."""
    informers = request.app.state.informers
    unsynced = [i.path for i in informers if not i.synced]
    if unsynced:
        return JSONResponse({"status": "not ready", "unsynced": unsynced}, status_code=503)
    if not request.app.state.pool.warm:
        return JSONResponse({"status": "not ready", "starting": "workers"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return request.app.state.metrics.response()
