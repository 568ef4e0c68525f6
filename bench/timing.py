"""How the benchmarks time an action in their own process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(action: Callable[[], object], repeats: int,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """The median of `repeats` timed runs of `action` by `clock`, after one untimed run that fills its caches."""
    action()
    samples = []
    for _ in range(repeats):
        started = clock()
        action()
        samples.append(clock() - started)
    return statistics.median(samples)
