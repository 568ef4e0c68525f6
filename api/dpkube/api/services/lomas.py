"""The Lomas 0.3 operations, one method per route, in Lomas' check order: dataset (400), then access (403).

Budgets are reported in (epsilon, delta) whatever the grant's accounting: a zCDP grant's rho totals are
each converted at the grant's delta (so initial is not spent + remaining there).
"""

from __future__ import annotations

from typing import Any

from dpkube.api.errors import InvalidQueryException
from dpkube.api.services.budgets import BudgetView
from dpkube.api.services.compute import Compute, dummy_dataset, price
from dpkube.api.services.datasets import Datasets
from dpkube.api.services.history import History
from dpkube.api.services.queries import Outcome, Queries
from dpkube.api.wire import DummyFields, WireModel, payload_of
from dpkube.models.dpquery import Mode
from dpkube.models.payloads import Library
from dpkube.models.progress import QueryProgress


class Lomas:
    """What each Lomas route does for an authenticated user."""

    def __init__(self, datasets: Datasets, budgets: BudgetView, queries: Queries, history: History,
                 compute: Compute, max_dummy_rows: int) -> None:
        self.datasets = datasets
        self.budgets = budgets
        self.queries = queries
        self.history = history
        self.compute = compute
        self.max_dummy_rows = max_dummy_rows

    async def dataset_metadata(self, user: str, dataset: str) -> dict[str, Any]:
        found = await self.datasets.get(dataset)
        await self.budgets.ledger(user, dataset)
        return found.metadata.lomas_dict()

    async def dummy_dataset(self, user: str, dataset: str, dummy: DummyFields) -> dict[str, Any]:
        """Built in a worker, within the pool's time limit and at most `max_dummy_rows` rows."""
        found = await self.datasets.get(dataset)
        await self.budgets.ledger(user, dataset)
        if dummy.dummy_nb_rows > self.max_dummy_rows:
            raise InvalidQueryException(
                f"dummy_nb_rows must be at most {self.max_dummy_rows}, got {dummy.dummy_nb_rows}.")
        return await self.compute.run(user, dummy_dataset, found.metadata, dummy.dummy_nb_rows,
                                      dummy.dummy_seed)

    async def initial_budget(self, user: str, dataset: str) -> dict[str, float]:
        await self.datasets.get(dataset)
        initial = (await self.budgets.ledger(user, dataset)).reported_initial
        return {"initial_epsilon": initial.epsilon, "initial_delta": initial.delta}

    async def total_spent_budget(self, user: str, dataset: str) -> dict[str, float]:
        await self.datasets.get(dataset)
        spent = (await self.budgets.ledger(user, dataset)).reported_spent
        return {"total_spent_epsilon": spent.epsilon, "total_spent_delta": spent.delta}

    async def remaining_budget(self, user: str, dataset: str) -> dict[str, float]:
        await self.datasets.get(dataset)
        remaining = (await self.budgets.ledger(user, dataset)).remaining_after_spent
        return {"remaining_epsilon": remaining.epsilon, "remaining_delta": remaining.delta}

    async def previous_queries(self, user: str, dataset: str) -> dict[str, Any]:
        await self.datasets.get(dataset)
        await self.budgets.ledger(user, dataset)
        return {"previous_queries": await self.history.previous_queries(user, dataset)}

    async def estimate_cost(self, user: str, library: Library, body: WireModel) -> dict[str, float]:
        """The library's own cost, computed in a worker without data: no pod, no charge."""
        dataset = body.dataset_name  # type: ignore[attr-defined]
        found = await self.datasets.get(dataset)
        await self.budgets.ledger(user, dataset)
        epsilon, delta = await self.compute.run(user, price, library, payload_of(library, body),
                                                found.metadata)
        return {"epsilon_cost": epsilon, "delta_cost": delta}

    async def private_query(self, user: str, library: Library, body: WireModel) -> dict[str, Any]:
        """Run on the real data, charged to the caller's budget."""
        return answer(user, await self.queries.run(user, library, Mode.QUERY, body))

    async def dummy_query(self, user: str, library: Library, body: WireModel) -> dict[str, Any]:
        """Run in a pod on dummy data generated from the metadata: free."""
        return answer(user, await self.queries.run(user, library, Mode.DUMMY, body))

    async def submit(self, user: str, library: Library, mode: Mode, body: WireModel) -> QueryProgress:
        """Submit without waiting (`Prefer: respond-async`): the same checks, then the query's first progress."""
        return await self.queries.start(user, library, mode, body)

    async def query_progress(self, user: str, name: str) -> QueryProgress | dict[str, Any]:
        """The caller's query: its progress while it runs, then what its route would have answered."""
        followed = await self.queries.follow(user, name)
        return followed if isinstance(followed, QueryProgress) else answer(user, followed)


def answer(user: str, outcome: Outcome) -> dict[str, Any]:
    """The Lomas body of an ended query: a private query reports what it spent, a dummy one what it would cost."""
    if outcome.mode == Mode.DUMMY:
        return {"query_response": outcome.response, "epsilon": outcome.cost.epsilon, "delta": outcome.cost.delta}
    return {"requested_by": user, "query_response": outcome.response,
            "spent_epsilon": outcome.spent.epsilon, "spent_delta": outcome.spent.delta}
