"""The budget chart of `dpkube query list`: the running total of spend, as bars of the initial budget."""

from __future__ import annotations

from dpkube.cli.charts import bar, spend_chart


def test_a_bar_fills_its_fraction_of_the_width() -> None:
    assert bar(0.5, 10) == "█████░░░░░"


def test_a_bar_past_full_or_below_empty_is_clamped() -> None:
    assert (bar(1.5, 4), bar(-1.0, 4)) == ("████", "░░░░")


def test_each_query_shows_the_running_total_and_the_last_line_what_remains() -> None:
    lines = spend_chart(10.0, [("a", 2.5), ("b", 2.5)], width=4)
    assert lines == ["a          █░░░  2.5", "b          ██░░  5", "remaining  ██░░  5 of 10"]


def test_with_nothing_spent_the_whole_budget_remains() -> None:
    assert spend_chart(1.0, [], width=4) == ["remaining  ████  1 of 1"]
