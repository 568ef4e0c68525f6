"""Budgets of (user, dataset) from the grant ConfigMaps: a watch-fed view, read through when it may be stale.

A budget read after a query of the same user and dataset that this instance watched end is read
from the API server, so an answer never lags the user's own spend.
"""

from __future__ import annotations

from typing import Any

from dpkube.api.errors import InternalServerException, UnauthorizedAccessException
from dpkube.api.services.informer import Informer
from dpkube.budget import ledger as L
from dpkube.k8s.budgets import GRANT_LABEL, GRANT_SELECTOR, grant_name
from dpkube.k8s.client import KubeClient, NotFound, core_path


def no_access(user: str, dataset: str) -> UnauthorizedAccessException:
    return UnauthorizedAccessException(f"{user} does not have access to {dataset}.")


def _names(item: dict[str, Any], user: str, dataset: str) -> bool:
    data = item.get("data") or {}
    return (item.get("metadata", {}).get("labels", {}).get(GRANT_LABEL) == "grant"
            and data.get("user") == user and data.get("dataset") == dataset)


class BudgetView:
    """Ledgers by (user, dataset)."""

    def __init__(self, client: KubeClient, namespace: str, informer: Informer | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.informer = informer
        self._stale: set[tuple[str, str]] = set()

    def mark_stale(self, user: str, dataset: str) -> None:
        """This instance moved (or saw moved) the budget: the next read goes to the API server."""
        self._stale.add((user, dataset))

    async def ledger(self, user: str, dataset: str) -> L.Ledger:
        """The ledger of `user` on `dataset`; 403 in Lomas' words when there is no grant."""
        key = (user, dataset)
        if self.informer is not None and self.informer.synced and key not in self._stale:
            item = self._cached(user, dataset)
        else:
            item = await self._read_through(user, dataset)
            self._stale.discard(key)
        if item is None:
            raise no_access(user, dataset)
        try:
            return L.from_data(item.get("data") or {})
        except L.InvalidGrant as exc:
            raise InternalServerException(f"grant {item['metadata']['name']}: {exc}") from None

    def _cached(self, user: str, dataset: str) -> dict[str, Any] | None:
        assert self.informer is not None
        item = self.informer.objects.get(grant_name(user, dataset))
        if item is not None and _names(item, user, dataset):
            return item
        matches = [i for i in self.informer.objects.values() if _names(i, user, dataset)]
        return self._one(matches, user, dataset)

    async def _read_through(self, user: str, dataset: str) -> dict[str, Any] | None:
        try:
            item = await self.client.get(core_path("configmaps", self.namespace, grant_name(user, dataset)))
        except NotFound:
            item = None
        if item is None or not _names(item, user, dataset):
            items = await self.client.list_all(core_path("configmaps", self.namespace), label_selector=GRANT_SELECTOR)
            item = self._one([i for i in items if _names(i, user, dataset)], user, dataset)
        if item is not None and self.informer is not None:
            self.informer.put(item)
        return item

    @staticmethod
    def _one(matches: list[dict[str, Any]], user: str, dataset: str) -> dict[str, Any] | None:
        if len(matches) > 1:
            raise InternalServerException(f"more than one grant for {user} on {dataset}")
        return matches[0] if matches else None
