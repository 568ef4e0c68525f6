"""The dashboard's server-drawn SVG charts: well-formed, scaled to their data, escaped, and small."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dpkube.api.ui.charts import budget_bar, nice_ticks, step_chart, thinned

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def rect_width(svg: str, cls: str) -> float:
    [rect] = [r for r in parsed(svg).iter(f"{SVG}rect") if r.get("class") == cls]
    return float(rect.get("width", "0"))


def test_a_budget_bar_is_spent_then_reserved_in_proportion_to_the_initial_budget() -> None:
    bar = budget_bar(10.0, 2.5, 1.0, width=400)
    assert (rect_width(bar, "spent"), rect_width(bar, "reserved")) == (100.0, 40.0)


def test_a_budget_bar_never_draws_past_its_width() -> None:
    bar = budget_bar(1.0, 3.0, 2.0, width=200)
    assert (rect_width(bar, "spent"), rect_width(bar, "reserved")) == (200.0, 0.0)


def test_a_budget_bar_of_an_empty_grant_draws_nothing_spent() -> None:
    assert rect_width(budget_bar(0.0, 0.0), "spent") == 0.0


def test_labels_are_escaped() -> None:
    bar = budget_bar(1.0, 0.5, label='<script>alert("x")</script>')
    assert "<script>" not in bar
    assert parsed(bar).find(f"{SVG}title").text == '<script>alert("x")</script>'  # type: ignore[union-attr]


def test_series_names_are_escaped() -> None:
    chart = step_chart({"<b>&": [(0.0, 1.0)]})
    assert "<b>" not in chart
    assert "&lt;b&gt;&amp;" in chart


def test_thinning_keeps_the_first_and_last_points_and_at_most_the_limit() -> None:
    points = [(float(i), float(i)) for i in range(10_000)]
    kept = thinned(points, 100)
    assert (len(kept), kept[0], kept[-1]) == (100, points[0], points[-1])


def test_a_short_series_is_not_thinned() -> None:
    assert thinned([(1.0, 1.0), (2.0, 2.0)], 100) == [(1.0, 1.0), (2.0, 2.0)]


def test_axis_ticks_are_round_and_reach_the_top() -> None:
    assert nice_ticks(0.9) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(7.0) == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_an_empty_axis_still_has_two_ticks() -> None:
    assert nice_ticks(0.0) == [0.0, 1.0]


def test_a_step_chart_draws_one_path_per_series() -> None:
    chart = step_chart({"PENGUIN": [(100.0, 0.1), (200.0, 0.3)], "IRIS": [(150.0, 1.0)]})
    assert [p.find(f"{SVG}title").text for p in parsed(chart).iter(f"{SVG}path")] == ["PENGUIN", "IRIS"]  # type: ignore[union-attr]


def test_a_step_chart_holds_each_value_until_the_next_point() -> None:
    chart = step_chart({"D": [(0.0, 1.0), (10.0, 2.0)]}, width=160, height=140)
    [path] = parsed(chart).iter(f"{SVG}path")
    # plot from x=48 to 148 and y=12 (value 2) to 100 (value 0): up to 1 at the start, to 2 at the end
    assert path.get("d") == "M48,100H48V56H148V12H148"


def test_a_step_chart_of_thousands_of_points_stays_small() -> None:
    points = [(float(i), i * 0.001) for i in range(10_000)]
    assert len(step_chart({"D": points}, max_points=400)) < 20_000


def test_a_chart_with_nothing_spent_says_so() -> None:
    assert "nothing spent yet" in step_chart({})
