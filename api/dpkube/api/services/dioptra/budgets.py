"""An experiment's budget cap and what its queries spent against it, per user and dataset.

Dioptra's Experiment keeps its four keys; the cap has routes of its own. A user sees only their own rows,
an admin every row; only an admin sets or removes the cap (in the Experiment's `spec.budget`).
"""

from __future__ import annotations

from typing import Any

from dpkube.api.auth import Identity
from dpkube.api.services.dioptra import messages
from dpkube.api.services.dioptra.catalog import Catalog
from dpkube.api.services.retry import retrying
from dpkube.budget import ledger as L
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import CapRow, ExperimentCaps, cap_of
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.models.cost import Cost


def cost_wire(cost: Cost) -> dict[str, float]:
    return {"epsilon": cost.epsilon, "delta": cost.delta}


def row_wire(row: CapRow) -> dict[str, Any]:
    """One (user, dataset): the cap as last applied to it, spent, reserved by queries in flight, and what remains."""
    ledger: L.Ledger = row.ledger
    return {"user": row.user, "dataset": row.dataset, "cap": cost_wire(ledger.initial),
            "spent": cost_wire(ledger.spent), "reserved": cost_wire(ledger.reserved),
            "remaining": cost_wire(ledger.remaining)}


def visible(rows: list[CapRow], caller: Identity) -> list[CapRow]:
    """A user's own rows; every row for an admin."""
    return rows if caller.admin else [row for row in rows if row.user == caller.user]


class ExperimentBudgets:
    """Reads and sets experiment caps; the cap's books are in the system namespace, the experiments in the query one."""

    def __init__(self, client: KubeClient, experiments: Catalog, system_namespace: str) -> None:
        self.client = client
        self.experiments = experiments
        self.caps = ExperimentCaps(Budgets(client, system_namespace))

    async def view(self, caller: Identity, experiment: dict[str, Any]) -> dict[str, Any]:
        """`{experimentId, name, cap, budgets: [...]}`; `cap` is null when the experiment sets none."""
        meta = experiment["metadata"]
        rows = await retrying(lambda: self.caps.rows(meta["namespace"], meta["name"]))
        cap = cap_of(experiment)
        wire = self.experiments.wire(experiment)
        return {"experimentId": wire["experimentId"], "name": wire["name"],
                "cap": None if cap is None else cost_wire(cap),
                "budgets": [row_wire(row) for row in visible(rows, caller)]}

    async def set_cap(self, caller: Identity, experiment: dict[str, Any], cap: Cost | None) -> dict[str, Any]:
        """Set (or, with None, remove) the cap; it applies from the next query admitted."""
        path = self.experiments.kind.api_path(experiment["metadata"]["namespace"], experiment["metadata"]["name"])
        budget = None if cap is None else cost_wire(cap)
        try:
            updated = await retrying(lambda: self.client.patch(path, {"spec": {"budget": budget}}))
        except NotFound:
            raise messages.not_found("experiment") from None
        return await self.view(caller, updated)
