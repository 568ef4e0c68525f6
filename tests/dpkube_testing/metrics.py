"""The session operator's own counters, read from its /metrics."""

from __future__ import annotations

import asyncio
import re

import httpx


async def operator_counter(platform_env: dict[str, str], name: str, namespace: str) -> float:
    """A counter of the operator's /metrics for one namespace's queries (other tests' queries may be priced
    meanwhile; the health port opens a moment after the process starts)."""
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                text = (await http.get(f"http://{platform_env['DPKUBE_HEALTH_LISTEN']}/metrics")).text
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
    return sum(float(value) for value in re.findall(rf'^{name}_total{{namespace="{namespace}"}} (\S+)$', text, re.M))
