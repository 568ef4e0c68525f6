"""A watch-fed, in-memory view of one collection, so hot reads never go to the API server.

List once (in pages), then watch from the list's resourceVersion; on any watch failure list again.
Readers check `synced` and read through to the API server when the view is not (yet) trustworthy.
A `transform` keeps only what readers need of each object (or drops it), so a large collection
costs little memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from dpkube.k8s.client import KubeClient

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
PAGE_SIZE = 500

Transform = Callable[[dict[str, Any]], dict[str, Any] | None]
"""What the view keeps of an object (with its metadata name and resourceVersion), or None to keep nothing."""


def newer(candidate: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `candidate` is a later version of the object than `current` (same object only)."""
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


class Informer:
    """Objects of one collection by name, kept current by a watch."""

    def __init__(self, client: KubeClient, path: str, *, label_selector: str | None = None,
                 watch_timeout_seconds: int = 60, transform: Transform | None = None) -> None:
        self.client = client
        self.path = path
        self.label_selector = label_selector
        self.watch_timeout_seconds = watch_timeout_seconds
        self.transform = transform
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        """The resourceVersion the view is current at (0 before the first list)."""
        self.synced_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    @property
    def synced(self) -> bool:
        return self.synced_at is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.path}")

    async def wait_synced(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self.synced

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.synced_at = None

    def put(self, obj: dict[str, Any]) -> None:
        """Record an object read elsewhere (a read-through), unless the view already holds a later one."""
        name = obj["metadata"]["name"]
        if newer(obj, self.objects.get(name)):
            self._store(name, obj)

    def _kept(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        return obj if self.transform is None else self.transform(obj)

    def _store(self, name: str, obj: dict[str, Any]) -> None:
        kept = self._kept(obj)
        if kept is None:
            self.objects.pop(name, None)
        else:
            self.objects[name] = kept

    async def _run(self) -> None:
        while True:
            try:
                await self._list_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a cache must outlive any fault: relist
                log.warning("cache watch restarted", extra={"path": self.path, "error": type(exc).__name__})
                self.synced_at = None
                self._synced.clear()
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self) -> str:
        """Replace the view with a fresh list, read page by page (one snapshot); its resourceVersion."""
        objects: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page = await self.client.list(self.path, label_selector=self.label_selector, limit=PAGE_SIZE,
                                          continue_token=token)
            for item in page.get("items", []):
                if (kept := self._kept(item)) is not None:
                    objects[item["metadata"]["name"]] = kept
            token = page["metadata"].get("continue")
            if not token:
                self.objects = objects
                return str(page["metadata"]["resourceVersion"])

    async def _list_and_watch(self) -> None:
        version = await self._list()
        self._seen(version)
        self.synced_at = time.monotonic()
        self._synced.set()
        while True:
            async for event in self.client.watch(self.path, resource_version=version,
                                                 label_selector=self.label_selector,
                                                 timeout_seconds=self.watch_timeout_seconds):
                obj = event.get("object") or {}
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._store(obj["metadata"]["name"], obj)
                elif event["type"] == "DELETED":
                    self.objects.pop(obj["metadata"]["name"], None)
                self._seen(version)
                self.synced_at = time.monotonic()

    def _seen(self, version: str) -> None:
        with contextlib.suppress(ValueError):
            self.version = max(self.version, int(version))
