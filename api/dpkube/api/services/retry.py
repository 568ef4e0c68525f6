"""Retry of API-server reads it asks to retry (429: starting watch caches, priority and fairness)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dpkube.k8s.client import ApiError

T = TypeVar("T")
ATTEMPTS = 20
MAX_DELAY = 1.0


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """The call's result, retried while the API server answers 429 Too Many Requests."""
    for attempt in range(ATTEMPTS):
        try:
            return await call()
        except ApiError as exc:
            if exc.status != 429 or attempt == ATTEMPTS - 1:
                raise
            retry_after = (exc.body.get("details") or {}).get("retryAfterSeconds") or 0
            await asyncio.sleep(min(MAX_DELAY, max(0.05 * (attempt + 1), float(retry_after))))
    raise AssertionError("unreachable")
