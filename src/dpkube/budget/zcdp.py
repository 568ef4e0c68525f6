"""Conversions between zero-concentrated DP (rho) and approximate DP (epsilon, delta), in pure Python.

`epsilon_of` follows OpenDP's own zCDP-to-approxDP conversion (the bound of Canonne, Kamath and Steinke
2020, minimised over the Rényi order by the same search), then rounds up a hair: the epsilon reported
at a delta is never below OpenDP's. `rho_of` inverts it from below: the rho a grant of (epsilon, delta)
holds never reaches past what OpenDP would convert back to that target.
"""

from __future__ import annotations

import math
from functools import lru_cache

ALPHA_MIN = 1.01
"""OpenDP's smallest Rényi order (smaller ones are numerically unstable and never optimal in practice)."""
ROUND_UP = 1e-9
"""Relative margin added to each epsilon: OpenDP rounds every step upward, Python to nearest."""
BISECTIONS = 200


class ConversionError(ValueError):
    """A rho, epsilon or delta outside the conversion's domain."""


@lru_cache(maxsize=4096)
def epsilon_of(rho: float, delta: float) -> float:
    """The epsilon of a rho-zCDP release at `delta`: the smallest bound over Rényi orders, as OpenDP finds it."""
    if not rho >= 0:
        raise ConversionError(f"rho must be non-negative, got {rho}")
    if not 0 < delta <= 1:
        raise ConversionError(f"delta must be in (0, 1], got {delta}")
    if rho == 0:
        return 0.0
    if math.isinf(rho):
        return math.inf

    def derivative_positive(alpha: float) -> bool:
        return rho > -math.log(alpha * delta) / (alpha - 1) ** 2

    low, high = ALPHA_MIN, 2.0
    while not derivative_positive(high):
        high *= 2
    while True:
        middle = low + (high - low) / 2
        if middle in (low, high):
            break
        if derivative_positive(middle):
            high = middle
        else:
            low = middle
    alpha = high
    numerator = (alpha - 1) * math.log((alpha - 1) / alpha) - math.log(alpha) + math.log(1 / delta)
    epsilon = alpha * rho + numerator / (alpha - 1)
    return max(0.0, epsilon * (1 + ROUND_UP) + 1e-15)


@lru_cache(maxsize=4096)
def rho_of(epsilon: float, delta: float) -> float:
    """The largest rho (found from below) whose conversion at `delta` stays within `epsilon`."""
    if not epsilon >= 0 or math.isinf(epsilon):
        raise ConversionError(f"epsilon must be a finite non-negative number, got {epsilon}")
    if not 0 < delta < 1:
        raise ConversionError(f"delta must be in (0, 1) to convert an (epsilon, delta) budget to rho, got {delta}")
    if epsilon == 0:
        return 0.0
    low, high = 0.0, max(1.0, epsilon)
    while epsilon_of(high, delta) <= epsilon:
        high *= 2
    for _ in range(BISECTIONS):
        middle = low + (high - low) / 2
        if middle in (low, high):
            break
        if epsilon_of(middle, delta) <= epsilon:
            low = middle
        else:
            high = middle
    return low
