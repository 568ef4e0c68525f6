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
        if self.informer is not None and self.informer.synced and (user, dataset) not in self._stale:
            return _ledger_of(self._cached(user, dataset), user, dataset)
        return _ledger_of(await self._read_through(user, dataset), user, dataset)

    async def for_access(self, user: str, dataset: str) -> L.Ledger:
        """The ledger a submission's access check reads: the watched copy when it lets the user query, however
        recent the user's spend (access changes only when an admin edits the grant, and the operator checks it
        again before any money moves); else the stored grant, so a refusal never comes from a lagging copy."""
        if self.informer is not None and self.informer.synced:
            item = self._cached(user, dataset)
            if item is not None and (ledger := _ledger_of(item, user, dataset)).may_query:
                return ledger
        return _ledger_of(await self._read_through(user, dataset), user, dataset)

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
        self._stale.discard((user, dataset))
        if item is not None and self.informer is not None:
            self.informer.put(item)
        return item

    @staticmethod
    def _one(items: list[dict[str, Any]], user: str, dataset: str) -> dict[str, Any] | None:
        try:
            return the_grant(items, user, dataset)
        except AmbiguousGrant as exc:
            raise InternalServerException(str(exc)) from None


def _ledger_of(item: dict[str, Any] | None, user: str, dataset: str) -> L.Ledger:
    """The grant's ledger; 403 in Lomas' words when there is no grant."""
    if item is None:
        raise no_access(user, dataset)
    try:
        return L.from_data(item.get("data") or {})
    except L.InvalidGrant as exc:
        raise InternalServerException(f"grant {item['metadata']['name']}: {exc}") from None
