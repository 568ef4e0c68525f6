"""List, then watch: the level-based feed both the binder and the pod runner act on.

Every (re)list hands over the complete current set, so missed or collapsed watch events never matter;
the list is redone when the watch answers Gone or the connection fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dpkube.k8s.client import ApiError, Gone, KubeClient

log = logging.getLogger(__name__)

OnList = Callable[[list[dict[str, Any]]], None]
OnEvent = Callable[[str, dict[str, Any]], None]


async def list_and_watch(
    client: KubeClient, path: str, *, field_selector: str, on_list: OnList, on_event: OnEvent,
    retry_seconds: float = 1.0, watch_seconds: int = 300,
) -> None:
    """Run until cancelled: `on_list(items)` after each list, `on_event(type, object)` for each change."""
    while True:
        try:
            listing = await client.list(path, field_selector=field_selector)
            on_list(listing.get("items", []))
            version = listing["metadata"]["resourceVersion"]
            while True:
                async for event in client.watch(
                    path, resource_version=version, field_selector=field_selector, timeout_seconds=watch_seconds,
                ):
                    version = _version(event.get("object", {})) or version
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], event["object"])
        except Gone:
            log.debug("watch of %s expired, listing again", path)
        except (ApiError, httpx.HTTPError, OSError, ValueError) as error:
            log.warning("watch of %s failed (%s), listing again in %.0fs", path, error, retry_seconds)
            await asyncio.sleep(retry_seconds)


def _version(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")
