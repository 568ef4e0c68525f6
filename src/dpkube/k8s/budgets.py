"""Budget grants as ConfigMaps, moved only by resourceVersion-conditioned updates.

Each (user, dataset) grant is its own ConfigMap in the operator's namespace (label
`dpkube.io/budget=grant`), so unrelated users and datasets never contend. A movement reads the
ConfigMap, applies a pure ledger function and writes it back conditioned on the resourceVersion it
read; on 409 Conflict it reads again and retries. The API server is the only state.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dpkube.budget import ledger as L
from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.k8s.group_commit import GroupCommit
from dpkube.models.conditions import Reason

log = logging.getLogger(__name__)
GRANT_LABEL = "dpkube.io/budget"
GRANT_SELECTOR = f"{GRANT_LABEL}=grant"
MAX_ATTEMPTS = 50


class GrantNotFound(L.BudgetError):
    reason = Reason.NO_BUDGET_GRANT


class AmbiguousGrant(L.BudgetError):
    reason = Reason.INVALID_GRANT


def is_grant_of(item: dict[str, Any], user: str, dataset: str) -> bool:
    """A labelled grant ConfigMap that names this user and dataset itself (never trusted by its name alone)."""
    data = item.get("data") or {}
    return ((item.get("metadata") or {}).get("labels") or {}).get(GRANT_LABEL) == "grant" \
        and data.get("user") == user and data.get("dataset") == dataset


def the_grant(items: list[dict[str, Any]], user: str, dataset: str) -> dict[str, Any] | None:
    """The one grant of (user, dataset) among `items`: None when there is none, AmbiguousGrant when several."""
    matches = [item for item in items if is_grant_of(item, user, dataset)]
    if len(matches) > 1:
        names = ", ".join(sorted(m["metadata"]["name"] for m in matches))
        raise AmbiguousGrant(f"more than one grant for {user} on {dataset}: {names}")
    return matches[0] if matches else None


def grant_name(user: str, dataset: str) -> str:
    """A stable, valid ConfigMap name for a grant (readable where the names allow it)."""
    readable = re.sub(r"[^a-z0-9]+", "-", f"{user}-{dataset}".lower()).strip("-")[:40]
    digest = hashlib.sha256(f"{user}\x00{dataset}".encode()).hexdigest()[:10]
    return f"budget-{readable}-{digest}"


ADMIN_KEYS = ("user", "dataset", "accounting", "initialEpsilon", "initialRho", "initialDelta", "mayQuery")
"""The keys of a grant that the admin writes (the operator keeps the others)."""


def grant_manifest(
    namespace: str, user: str, dataset: str, epsilon: float | None, delta: float, *, may_query: bool = True,
    accounting: L.Accounting = L.Accounting.APPROX_DP, rho: float | None = None,
) -> dict[str, Any]:
    """The ConfigMap an admin applies to grant `user` a budget on `dataset`: (epsilon, delta), or under zCDP
    a rho (given, or converted from epsilon at delta) reported at delta. InvalidGrant when it cannot be read."""
    data = {"user": user, "dataset": dataset}
    if accounting is L.Accounting.ZCDP:
        data["accounting"] = accounting.value
    elif rho is not None:
        raise L.InvalidGrant("a rho budget needs zCDP accounting")
    if (epsilon is None) == (rho is None):
        raise L.InvalidGrant("a grant takes an epsilon or (under zCDP) a rho, exactly one")
    if rho is not None:
        data["initialRho"] = repr(float(rho))
    if epsilon is not None:
        data["initialEpsilon"] = repr(float(epsilon))
    data |= {"initialDelta": repr(float(delta)), "mayQuery": "true" if may_query else "false"}
    L.from_data(data)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": grant_name(user, dataset), "namespace": namespace,
                     "labels": {GRANT_LABEL: "grant"}},
        "data": data,
    }


Batch = list[tuple[Callable[[L.Ledger], L.Ledger], "asyncio.Future[L.Ledger]"]]


def _unchanged(ledger: L.Ledger) -> L.Ledger:
    """A movement that moves nothing: its write carries only what the grant had waiting to settle."""
    return ledger


def _not_written(done: asyncio.Future[L.Ledger]) -> None:
    """A movement whose committer was cancelled before writing it: nothing moved, its caller may try again."""
    done.set_exception(L.BudgetError("the grant's write was cut short; nothing moved"))


@dataclass
class _GrantLine:
    """One grant's movements in this process: the body last read or written, and those waiting their turn."""

    body: dict[str, Any] | None = None
    writes: GroupCommit[Callable[[L.Ledger], L.Ledger], L.Ledger] = field(default_factory=GroupCommit)
    settled: set[str] = field(default_factory=set)
    """Ended queries whose rows the grant's next write forgets (`Budgets.settle_later`)."""


def _newer(candidate: dict[str, Any], known: dict[str, Any] | None) -> bool:
    if known is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) > int(known["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


@dataclass(frozen=True)
class Grant:
    """A grant ConfigMap as read: its name, the resourceVersion read, and its ledger."""

    name: str
    resource_version: str
    ledger: L.Ledger
    body: dict[str, Any]
    """The ConfigMap as read: the first compare-and-swap of a movement starts from it."""


class Budgets:
    """Grant look-up and compare-and-swap movements in one namespace."""

    def __init__(self, client: KubeClient, namespace: str):
        self.client = client
        self.namespace = namespace
        self._lines: dict[str, _GrantLine] = {}

    async def find(self, user: str, dataset: str) -> Grant:
        """The grant of (user, dataset): the conventional name first, then any grant that names them."""
        item = await self.find_item(user, dataset)
        if item is None:
            raise GrantNotFound(f"{user} does not have access to {dataset}.")
        return self._grant(item)

    async def find_to_move(self, user: str, dataset: str) -> Grant:
        """The grant of (user, dataset) as this process last read or wrote it, else as stored: a movement is
        conditioned on that version, so a stale one costs a retry, never a wrong movement, and a burst of
        admissions on one grant does not read its whole ledger once per query. A movement that fails forgets
        the remembered version (a deleted grant: NotFound once, then GrantNotFound)."""
        line = self._lines.get(grant_name(user, dataset))
        if line is not None and line.body is not None and is_grant_of(line.body, user, dataset):
            return self._grant(line.body)
        return await self.find(user, dataset)

    async def find_item(self, user: str, dataset: str) -> dict[str, Any] | None:
        """The grant ConfigMap of (user, dataset) as stored, or None."""
        try:
            item = await self.client.get(core_path("configmaps", self.namespace, grant_name(user, dataset)))
        except NotFound:
            item = None
        if item is not None and is_grant_of(item, user, dataset):
            return item
        items = await self.client.list_all(core_path("configmaps", self.namespace), label_selector=GRANT_SELECTOR)
        return the_grant(items, user, dataset)

    async def list(self, user: str | None = None) -> list[Grant]:
        """Every readable grant (of one user if given)."""
        grants = []
        for item in await self.client.list_all(core_path("configmaps", self.namespace), label_selector=GRANT_SELECTOR):
            if user is not None and item.get("data", {}).get("user") != user:
                continue
            try:
                grants.append(self._grant(item))
            except L.InvalidGrant:
                continue
        return grants

    @staticmethod
    def _grant(item: dict[str, Any]) -> Grant:
        return Grant(item["metadata"]["name"], item["metadata"]["resourceVersion"], L.from_data(item.get("data") or {}),
                     item)

    async def move(self, grant: Grant | str, movement: Callable[[L.Ledger], L.Ledger]) -> L.Ledger:
        """Apply `movement` to a grant atomically; retried on conflict, skipped when a no-op; the ledger after it.

        Movements of one grant that arrive while another is being written are committed together: each is
        applied in turn to the ledger as read, and one write conditioned on that read carries them all, or
        none (on a conflict they are re-applied to what is stored then). A movement that raises is left
        out, and its caller gets the exception; the others go through.
        """
        name = grant if isinstance(grant, str) else grant.name
        line = self._lines.setdefault(name, _GrantLine())
        if isinstance(grant, Grant) and _newer(grant.body, line.body):
            line.body = grant.body
        return await line.writes.submit(movement, lambda batch: self._commit(name, line, batch), _not_written)

    def settle_later(self, name: str, uid: str) -> None:
        """Forget an ended query's rows (and return what is left of its reservation) with the grant's next write,
        not with a write of its own: a user's next query carries its clean-up. `flush_settled` writes what no
        movement carried; after a crash the ledger audit does."""
        self._lines.setdefault(name, _GrantLine()).settled.add(uid)

    async def flush_settled(self) -> None:
        """Write the settlements that no movement carried (a grant that is gone has nothing left to settle)."""
        for name, line in list(self._lines.items()):
            if not line.settled:
                continue
            try:
                await self.move(name, _unchanged)
            except NotFound:
                line.settled.clear()
            except Exception as exc:  # the next flush (or the ledger audit) tries again
                log.warning("could not settle %d ended queries on grant %s: %s", len(line.settled), name, exc)

    async def _commit(self, name: str, line: _GrantLine, batch: Batch) -> None:
        path = core_path("configmaps", self.namespace, name)
        try:
            for attempt in range(MAX_ATTEMPTS):
                if line.body is None:
                    line.body = await self.client.get(path)
                current = line.body
                settling = set(line.settled)
                before = L.from_data(current.get("data") or {})
                ledger = L.settle(before, settling)
                results: builtins.list[L.Ledger | L.BudgetError] = []
                for movement, _ in batch:
                    try:
                        ledger = movement(ledger)
                        results.append(ledger)
                    except L.BudgetError as exc:
                        results.append(exc)
                if ledger != before:
                    updated = {**current, "data": {**(current.get("data") or {}), **L.to_data(ledger)}}
                    try:
                        line.body = await self.client.replace(path, updated)
                    except Conflict:
                        line.body = None
                        await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                        continue
                line.settled -= settling
                for (_, done), result in zip(batch, results, strict=True):
                    if isinstance(result, L.BudgetError):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
                return
            raise L.BudgetError(f"grant {name} kept changing; gave up after {MAX_ATTEMPTS} attempts")
        except BaseException as exc:
            line.body = None
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def grant(self, user: str, dataset: str, epsilon: float | None, delta: float, *, may_query: bool = True,
                    accounting: L.Accounting = L.Accounting.APPROX_DP, rho: float | None = None) -> None:
        """Create or update a grant's initial budget (admin), keeping what was spent and reserved. Switching
        the accounting of a grant that has spent under the other one is refused (InvalidGrant)."""
        manifest = grant_manifest(self.namespace, user, dataset, epsilon, delta, may_query=may_query,
                                  accounting=accounting, rho=rho)
        path = core_path("configmaps", self.namespace, manifest["metadata"]["name"])
        for _ in range(MAX_ATTEMPTS):
            try:
                current = await self.client.get(path)
            except NotFound:
                try:
                    await self.client.create(core_path("configmaps", self.namespace), manifest)
                    return
                except Conflict:
                    continue
            kept = {k: v for k, v in (current.get("data") or {}).items() if k not in ADMIN_KEYS}
            current["data"] = {**kept, **manifest["data"]}
            L.from_data(current["data"])
            current.setdefault("metadata", {}).setdefault("labels", {})[GRANT_LABEL] = "grant"
            try:
                await self.client.replace(path, current)
                return
            except Conflict:
                continue
        raise L.BudgetError(f"grant {path} kept changing")
