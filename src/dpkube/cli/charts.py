"""Small text charts for the terminal: how a budget was spent, query by query."""

from __future__ import annotations

from collections.abc import Sequence

FULL, EMPTY = "█", "░"


def bar(fraction: float, width: int) -> str:
    """`fraction` of `width` cells filled (clamped to [0, 1]), rounded to the nearest cell."""
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    return FULL * filled + EMPTY * (width - filled)


def spend_chart(initial: float, spends: Sequence[tuple[str, float]], width: int = 30) -> list[str]:
    """One line per query: its label, the budget spent up to and including it as a bar of `initial`, and the
    running total; a last line says what remains."""
    lines, total = [], 0.0
    label_width = max([len("remaining"), *(len(label) for label, _ in spends)])
    for label, spent in spends:
        total += spent
        lines.append(f"{label:{label_width}}  {bar(total / initial if initial else 1.0, width)}  {total:g}")
    lines.append(f"{'remaining':{label_width}}  {bar(1 - total / initial if initial else 0.0, width)}  "
                 f"{max(initial - total, 0.0):g} of {initial:g}")
    return lines
