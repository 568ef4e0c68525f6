"""How a query ends: the budget moves first, then the one terminal status write, then the clean-up.

This is the only place that writes a terminal phase. A release charges before the result becomes
readable; any other ending charges when the data was read and refunds otherwise. Every budget step
is keyed by the query's uid, so a retried ending moves nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from dpkube.budget import ledger as L
from dpkube.k8s import dpqueries
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import ExperimentCaps, cap_key
from dpkube.k8s.client import KubeClient, NotFound, core_path
from dpkube.k8s.events import EventRecorder
from dpkube.k8s.pods import pod_name
from dpkube.k8s.results import publish
from dpkube.models.conditions import ConditionType, Reason
from dpkube.models.cost import ZERO, Cost
from dpkube.models.dpquery import DPQueryStatus, Mode, Phase
from dpkube.operator.domain import status as S
from dpkube.operator.domain.lifecycle import FINALIZER, End, QueryView
from dpkube.operator.metrics import STATUS_WRITES
from dpkube.operator.registry import Registry

log = logging.getLogger(__name__)


class Endings:
    """Settles queries: money, the terminal status, and what is left behind."""

    def __init__(self, client: KubeClient, budgets: Budgets, events: EventRecorder, registry: Registry,
                 clock: Callable[[], dt.datetime], inline_max_bytes: int,
                 on_cleaned: Callable[[str], Any] | None = None) -> None:
        self.client = client
        self.budgets = budgets
        self.caps = ExperimentCaps(budgets)
        self.events = events
        self.registry = registry
        self.clock = clock
        self.inline_max_bytes = inline_max_bytes
        self.on_cleaned = on_cleaned

    async def release(self, body: dict[str, Any], query: QueryView, response: Any) -> dict[str, Any]:
        """Charge (query mode), then make the result readable, then succeed."""
        charged = query.spec.mode == Mode.QUERY
        if charged:
            await self._charge(query)
        result, ref = await publish(self.client, body, response, self.inline_max_bytes)
        return await self.finish(body, query.status, Phase.SUCCEEDED, Reason.SUCCEEDED, "result released",
                                 charged=charged, result=result, result_ref=ref)

    async def end(self, body: dict[str, Any], query: QueryView, step: End) -> dict[str, Any]:
        """An ending other than a release: charged when the data was read, refunded otherwise."""
        if step.stop_pod:
            await self.delete_pod(query)
        if step.charge:
            await self._charge(query)
        else:
            await self._refund(body, query)
        return await self.finish(body, query.status, step.phase, step.reason, step.message, charged=step.charge)

    async def priced(self, body: dict[str, Any], query: QueryView, cost: Cost) -> dict[str, Any]:
        """A cost-mode query: the price is its answer."""
        return await self.finish(body, query.status, Phase.SUCCEEDED, Reason.SUCCEEDED, "cost estimated", charged=False,
                          cost=cost)

    async def finish(self, body: dict[str, Any], status: DPQueryStatus, phase: Phase, reason: str, message: str, *,
                     charged: bool, **updates: Any) -> dict[str, Any]:
        """Write the terminal phase (the one place that does), post its Event, and clean up; the body written."""
        now = self.clock()
        updates["spent"] = (status.cost or ZERO) if charged else ZERO
        if charged:
            status = S.set_condition(status, ConditionType.CHARGED, True, Reason.CHARGED,
                                     "cost moved from reserved to spent", now)
        status = S.transition(status, phase, reason, message, now, **updates)
        STATUS_WRITES.inc()
        written = await dpqueries.write_status(self.client, body, S.serialise(status))
        self.registry.observe(written)
        spent = updates["spent"]
        self.events.record(written, reason, f"{message}; charged epsilon {spent.epsilon}, delta {spent.delta}"
                           if charged else message, warning=phase != Phase.SUCCEEDED)
        return await self.clean_up(written)

    async def clean_up(self, body: dict[str, Any]) -> dict[str, Any]:
        """After a terminal phase: the pod goes, the grant forgets the uid (with its next write), the finalizer comes
        off; the query as it is then (its events up to that version are this process's own)."""
        if FINALIZER not in (body["metadata"].get("finalizers") or []):
            return body
        query = QueryView.of(body)
        await self.delete_pod(query)
        if query.spec.mode == Mode.QUERY:
            await self._move_cap(query, lambda ledger: L.settle(ledger, [query.uid]))
            try:
                grant = await self.budgets.find_to_move(query.spec.user, query.spec.dataset)
            except L.BudgetError:
                pass
            else:
                self.budgets.settle_later(grant.name, query.uid)
        if self.on_cleaned is not None:
            await self.on_cleaned(query.namespace)
        cleaned = await dpqueries.remove_finalizer(self.client, body, FINALIZER)
        if cleaned is None:
            return body
        self.registry.observe(cleaned)
        return cleaned

    async def delete_pod(self, query: QueryView) -> None:
        name = query.status.pod_name or pod_name(query.uid)
        try:
            await self.client.delete(core_path("pods", query.namespace, name), grace_seconds=0)
        except NotFound:
            pass

    async def _charge(self, query: QueryView) -> None:
        """Move the reservation to spent (the terminal Event names the charge)."""
        grant = await self.budgets.find_to_move(query.spec.user, query.spec.dataset)
        await self._move_cap(query, lambda ledger: L.charge(ledger, query.uid))
        await self.budgets.move(grant, lambda ledger: L.charge(ledger, query.uid))

    async def _refund(self, body: dict[str, Any], query: QueryView) -> None:
        if query.spec.mode != Mode.QUERY:
            return
        await self._move_cap(query, lambda ledger: L.refund(ledger, query.uid))
        try:
            grant = await self.budgets.find(query.spec.user, query.spec.dataset)
        except L.BudgetError:
            return
        before = grant.ledger
        after = await self.budgets.move(grant, lambda ledger: L.refund(ledger, query.uid))
        if query.uid in before.reservations and query.uid not in after.reservations:
            self.events.record(body, Reason.REFUNDED, "reservation returned: nothing depended on the data")

    async def _move_cap(self, query: QueryView, movement: Callable[[L.Ledger], L.Ledger]) -> None:
        """The grant's movement for this query, made first on its experiment's cap (when that holds the query)."""
        try:
            await self.caps.mirror(cap_key(query.namespace, query.spec), query.uid, movement)
        except L.InvalidGrant:
            log.warning("the experiment cap of query %s/%s is unreadable", query.namespace, query.name)
