"""List, then watch: the one level-based feed of every component that follows a collection.

Every (re)list hands over the complete current set, so missed or collapsed watch events never matter;
the list is redone when the watch answers Gone or the connection fails. `Informer` keeps the feed as
an in-memory view, so hot reads never go to the API server; its `transform` keeps only what readers
need of each object (or drops it), page by page as a list arrives, so a large collection costs little
memory; its `indexes` file what it keeps by key, so a reader reads only its own share; its observers
see each object whole as it arrives, so several readers share one list-and-watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any

from dpkube.k8s.client import Gone, KubeClient

log = logging.getLogger(__name__)

OnList = Callable[[list[dict[str, Any]]], None]
OnEvent = Callable[[str, dict[str, Any]], None]
OnError = Callable[[], None]
Transform = Callable[[dict[str, Any]], dict[str, Any] | None]
"""What a view keeps of an object (with its metadata name and resourceVersion), or None to keep nothing."""
Index = Callable[[dict[str, Any]], Hashable | None]
"""The key under which one index files what a view kept of an object, or None to leave it out."""
Observer = Callable[[str, dict[str, Any]], None]
"""Sees each object the feed hands over, whole: LISTED for an item of a (re)list, else the watch event's type."""
LISTED = "LISTED"
RETRY_SECONDS = 1.0
PAGE_SIZE = 500


async def list_and_watch(
    client: KubeClient, path: str, *, on_list: OnList, on_event: OnEvent, field_selector: str | None = None,
    label_selector: str | None = None, on_error: OnError | None = None, retry_seconds: float = RETRY_SECONDS,
    watch_seconds: int = 300, keep: Transform | None = None,
) -> None:
    """Run until cancelled: `on_list(items)` after each list, `on_event(type, object)` for each change,
    `on_error()` when the feed broke and what was handed over may be stale until the next list. With `keep`,
    each listed item is replaced as its page arrives by what `keep` returns (dropped on None), and `on_list`
    gets those: a large list is never held whole."""
    while True:
        try:
            items, version = await _list(client, path, field_selector, label_selector, keep)
            on_list(items)
            while True:
                async for event in client.watch(path, resource_version=version, field_selector=field_selector,
                                                label_selector=label_selector, timeout_seconds=watch_seconds):
                    version = _version(event.get("object", {})) or version
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], event["object"])
        except asyncio.CancelledError:
            raise
        except Gone:
            log.debug("watch of %s expired, listing again", path)
        except Exception as error:  # a feed must outlive any fault: list again
            log.warning("watch of %s failed (%s), listing again in %.0fs", path, type(error).__name__, retry_seconds)
            if on_error is not None:
                on_error()
            await asyncio.sleep(retry_seconds)


async def _list(client: KubeClient, path: str, field_selector: str | None, label_selector: str | None,
                keep: Transform | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every item (or what `keep` keeps of it), read page by page from one snapshot, and that snapshot's
    resourceVersion."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = await client.list(path, field_selector=field_selector, label_selector=label_selector,
                                 limit=PAGE_SIZE, continue_token=token)
        listed = page.get("items", [])
        items += listed if keep is None else [kept for item in listed if (kept := keep(item)) is not None]
        token = page["metadata"].get("continue")
        if not token:
            return items, str(page["metadata"]["resourceVersion"])


def _version(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def newer(candidate: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `candidate` is a later version of the object than `current` (same object only)."""
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


class Informer:
    """Objects of one collection by name, kept current by `list_and_watch`; readers check `synced`."""

    def __init__(self, client: KubeClient, path: str, *, label_selector: str | None = None,
                 watch_timeout_seconds: int = 60, transform: Transform | None = None,
                 indexes: Mapping[str, Index] | None = None) -> None:
        self.client = client
        self.path = path
        self.label_selector = label_selector
        self.watch_timeout_seconds = watch_timeout_seconds
        self.transform = transform
        self.indexes = dict(indexes or {})
        self.objects: dict[str, dict[str, Any]] = {}
        self._filed: dict[str, dict[Hashable, dict[str, dict[str, Any]]]] = {index: {} for index in self.indexes}
        self._observers: list[Observer] = []
        self.version = 0
        """The resourceVersion the view is current at (0 before the first list)."""
        self._listing_version = 0
        self.synced_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    @property
    def synced(self) -> bool:
        return self.synced_at is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                list_and_watch(self.client, self.path, on_list=self._listed, on_event=self._changed,
                               on_error=self._broken, label_selector=self.label_selector,
                               watch_seconds=self.watch_timeout_seconds, keep=self._keep_listed),
                name=f"informer {self.path}")

    def observe(self, observer: Observer) -> None:
        """Show `observer` every object the feed hands over from now on, whole: a watch event once the view has
        kept it, a listed item as its page arrives (the view is replaced once the list is complete)."""
        self._observers.append(observer)

    def indexed(self, index: str, key: Hashable) -> Mapping[str, dict[str, Any]]:
        """What the view keeps of the objects `index` files under `key`, by name (read-only)."""
        return MappingProxyType(self._filed[index].get(key) or {})

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
        self._synced.clear()

    def put(self, obj: dict[str, Any]) -> None:
        """Record an object read elsewhere (a read-through), unless the view already holds a later one."""
        name = obj["metadata"]["name"]
        if newer(obj, self.objects.get(name)):
            self._store(name, obj)

    def _kept(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """What the view keeps of `obj` (None: nothing)."""
        return obj if self.transform is None else self.transform(obj)

    def _store(self, name: str, obj: dict[str, Any]) -> None:
        kept = self._kept(obj)
        if kept is None:
            self._drop(name)
        else:
            self._unfile(name, self.objects.get(name))
            self.objects[name] = kept
            self._file(name, kept)

    def _drop(self, name: str) -> None:
        self._unfile(name, self.objects.pop(name, None))

    def _file(self, name: str, kept: dict[str, Any]) -> None:
        for index, key_of in self.indexes.items():
            if (key := key_of(kept)) is not None:
                self._filed[index].setdefault(key, {})[name] = kept

    def _unfile(self, name: str, kept: dict[str, Any] | None) -> None:
        if kept is None:
            return
        for index, key_of in self.indexes.items():
            key = key_of(kept)
            filed = self._filed[index].get(key) if key is not None else None
            if filed is not None:
                filed.pop(name, None)
                if not filed:
                    del self._filed[index][key]

    def _notify(self, kind: str, obj: dict[str, Any]) -> None:
        for observer in self._observers:
            observer(kind, obj)

    def _keep_listed(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        kept = self._kept(obj)
        with contextlib.suppress(TypeError, ValueError):
            self._listing_version = max(self._listing_version, int(_version(obj) or 0))
        self._notify(LISTED, obj)
        return kept

    def _seen(self, obj: dict[str, Any]) -> None:
        with contextlib.suppress(TypeError, ValueError):
            self.version = max(self.version, int(_version(obj) or 0))

    def _listed(self, kept: list[dict[str, Any]]) -> None:
        """Replace the view by a list's items, as `_keep_listed` kept them (and saw every item's version)."""
        self.objects = {}
        self._filed = {index: {} for index in self.indexes}
        for item in kept:
            name = item["metadata"]["name"]
            self.objects[name] = item
            self._file(name, item)
        self.version = max(self.version, self._listing_version)
        self._listing_version = 0
        self.synced_at = time.monotonic()
        self._synced.set()

    def _broken(self) -> None:
        self.synced_at = None
        self._synced.clear()

    def _changed(self, kind: str, obj: dict[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self._store(obj["metadata"]["name"], obj)
        elif kind == "DELETED":
            self._drop(obj["metadata"]["name"])
        self._seen(obj)
        self.synced_at = time.monotonic()
        self._notify(kind, obj)
