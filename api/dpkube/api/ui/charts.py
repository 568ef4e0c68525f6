"""Charts drawn on the server as inline SVG: a page needs no script and nothing from elsewhere.

Every text is escaped; colours are presentation attributes (never `style`), so a strict Content Security
Policy allows them. A series is thinned to `max_points` before drawing, so a page stays small however many
queries it charts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from html import escape

SPENT = "#c0392b"
RESERVED = "#e67e22"
REMAINING = "#27ae60"
TRACK = "#e5e7eb"
PALETTE = ("#2563eb", "#c0392b", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'

Point = tuple[float, float]


def _num(value: float) -> str:
    """A coordinate, short and exact enough."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _fraction(part: float, whole: float) -> float:
    if whole <= 0 or not math.isfinite(part):
        return 0.0
    return min(1.0, max(0.0, part / whole))


def budget_bar(initial: float, spent: float, reserved: float = 0.0, *, label: str = "", width: int = 360,
               height: int = 18) -> str:
    """A horizontal bar of a budget: spent, then reserved, then remaining, scaled to the initial budget."""
    spent_w = width * _fraction(spent, initial)
    reserved_w = min(width - spent_w, width * _fraction(reserved, initial))
    title = escape(label or f"spent {spent:g} of {initial:g}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}"><title>{title}</title>'
        f'<rect width="{width}" height="{height}" rx="3" fill="{REMAINING}"/>'
        f'<rect width="{_num(spent_w)}" height="{height}" fill="{SPENT}" class="spent"/>'
        f'<rect x="{_num(spent_w)}" width="{_num(reserved_w)}" height="{height}" fill="{RESERVED}" class="reserved"/>'
        "</svg>"
    )


def thinned(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most `max_points` of `points`, evenly spread, the first and last always kept."""
    if len(points) <= max_points:
        return list(points)
    if max_points < 2:
        return [points[-1]]
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round values from 0 to at least `top` for an axis (0 and 1 when there is nothing to show)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _time_label(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%m-%d %H:%M")


def step_chart(series: Mapping[str, Sequence[Point]], *, width: int = 640, height: int = 220,
               max_points: int = 400, title: str = "", now: float | None = None) -> str:
    """Lines that each hold their value until the next point (a cumulative total over time), with axes, in
    one SVG; each series ends at `now` when given. No series: an empty chart that says so."""
    left, right, top, bottom = 48, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    drawn = {name: thinned(points, max_points) for name, points in series.items() if points}
    xs = [x for points in drawn.values() for x, _ in points]
    end = max([*xs, now or 0.0]) if xs else 0.0
    start = min(xs) if xs else 0.0
    span = max(end - start, 1.0)
    ticks = nice_ticks(max((y for points in drawn.values() for _, y in points), default=0.0))
    y_top = ticks[-1]

    def x_of(x: float) -> float:
        return left + plot_w * (x - start) / span

    def y_of(y: float) -> float:
        return top + plot_h * (1 - y / y_top)

    label = escape(title or "spend over time")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}"><title>{label}</title>']
    for tick in ticks:
        tick_y = _num(y_of(tick))
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{tick_y}" y2="{tick_y}" stroke="{TRACK}"/>'
                     f'<text x="{left - 6}" y="{tick_y}" text-anchor="end" dominant-baseline="middle" {FONT}>'
                     f"{tick:g}</text>")
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#9ca3af"/>')
    if not drawn:
        parts.append(f'<text x="{left + plot_w / 2:g}" y="{top + plot_h / 2:g}" text-anchor="middle" {FONT}>'
                     "nothing spent yet</text></svg>")
        return "".join(parts)
    for x in (start, end):
        anchor = "start" if x == start else "end"
        parts.append(f'<text x="{_num(x_of(x))}" y="{top + plot_h + 14}" text-anchor="{anchor}" {FONT}>'
                     f"{_time_label(x)}</text>")
    for i, (name, points) in enumerate(drawn.items()):
        colour = PALETTE[i % len(PALETTE)]
        path = [f"M{_num(x_of(start))},{_num(y_of(0))}"]
        for x, y in points:
            path.append(f"H{_num(x_of(x))}V{_num(y_of(y))}")
        path.append(f"H{_num(x_of(max(end, points[-1][0])))}")
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'class="series"><title>{escape(name)}</title></path>')
        legend_x = left + 8 + 130 * i
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 5}" {FONT}>{escape(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)
