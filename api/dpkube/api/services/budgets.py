"""Budgets of (user, dataset) from the grant ConfigMaps: a watch-fed view, read through when it may be stale.

A budget read after a query of the same user and dataset that this instance watched end is read
from the API server, so an answer never lags the user's own spend.
"""

from __future__ import annotations

from typing import Any

from dpkube.api.errors import InternalServerException, UnauthorizedAccessException
from dpkube.budget import ledger as L
from dpkube.k8s.budgets import AmbiguousGrant, Budgets, grant_name, is_grant_of, the_grant
from dpkube.k8s.client import KubeClient
from dpkube.k8s.informer import Informer


def no_access(user: str, dataset: str) -> UnauthorizedAccessException:
    return UnauthorizedAccessException(f"{user} does not have access to {dataset}.")


class BudgetView:
    """Ledgers by (user, dataset)."""

    def __init__(self, client: KubeClient, namespace: str, informer: Informer | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.grants = Budgets(client, namespace)
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
        if item is not None and is_grant_of(item, user, dataset):
            return item
        return self._one(list(self.informer.objects.values()), user, dataset)

    async def _read_through(self, user: str, dataset: str) -> dict[str, Any] | None:
        try:
            item = await self.grants.find_item(user, dataset)
        except AmbiguousGrant as exc:
            raise InternalServerException(str(exc)) from None
        if item is not None and self.informer is not None:
            self.informer.put(item)
        return item

    @staticmethod
    def _one(items: list[dict[str, Any]], user: str, dataset: str) -> dict[str, Any] | None:
        try:
            return the_grant(items, user, dataset)
        except AmbiguousGrant as exc:
            raise InternalServerException(str(exc)) from None
