"""The one privacy cost type: what a query costs, what a grant holds, what was spent and what remains.

Budgets are money, so arithmetic on them lives here once: sums cap delta at 1, differences stop at
zero, and `fits_in` allows the last-bit drift of float sums (a query that fits exactly must fit).
Only wire layers split a Cost into Lomas' `*_epsilon` / `*_delta` fields. A query whose release is
also zero-concentrated DP carries its `rho`; only a zCDP grant's ledger adds rhos up, so the arithmetic
here is on (epsilon, delta) alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from dpkube.models.base import KubeModel

TOLERANCE = 1e-12
"""Float sums drift in the last bits; this much over a budget still fits it."""


class Cost(KubeModel):
    """A privacy cost in the (epsilon, delta) of approximate differential privacy."""

    model_config = ConfigDict(frozen=True)

    epsilon: float = Field(default=0.0, ge=0)
    """Epsilon."""
    delta: float = Field(default=0.0, ge=0, le=1)
    """Delta."""
    rho: float | None = Field(default=None, ge=0)
    """The zero-concentrated DP cost, when the release is rho-zCDP (Gaussian noise); what a zCDP grant charges."""

    def __init__(self, epsilon: float = 0.0, delta: float = 0.0, /, **fields: Any) -> None:
        """Positional `Cost(epsilon, delta)` as well as keywords (the engine's libraries write it so)."""
        fields.setdefault("epsilon", epsilon)
        fields.setdefault("delta", delta)
        super().__init__(**fields)

    def __add__(self, other: Cost) -> Cost:
        """The basic composition of two (epsilon, delta) costs (a sum carries no rho)."""
        return Cost(self.epsilon + other.epsilon, min(1.0, self.delta + other.delta))

    def __sub__(self, other: Cost) -> Cost:
        """What is left of `self` once `other` is taken: never below zero."""
        return Cost(max(0.0, self.epsilon - other.epsilon), max(0.0, self.delta - other.delta))

    def fits_in(self, budget: Cost) -> bool:
        """Both parts are within `budget`, up to float drift."""
        return self.epsilon <= budget.epsilon + TOLERANCE and self.delta <= budget.delta + TOLERANCE

    @classmethod
    def total(cls, costs: Any) -> Cost:
        """The sum of an iterable of costs (zero when empty)."""
        result = ZERO
        for cost in costs:
            result = result + cost
        return result


ZERO = Cost()
