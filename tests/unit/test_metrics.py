"""The supervisor's figures from plain values, and the charts they are drawn as: no Flask, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from console import charts, metrics
from console.metrics import CallGroup

WAITS_MIN = [4, 1, 3, 2, 10, 6, 5, 8, 7, 9]  # minutes; sorted: 1..10


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    assert metrics.median(WAITS_MIN) == 5.5  # the mean of the two middle waits, 5 and 6
    assert metrics.percentile(WAITS_MIN, 90) == pytest.approx(9.1)  # rank 8.1 of 0..9: 9 + 0.1 × (10 − 9)
    assert metrics.percentile(WAITS_MIN, 0) == 1
    assert metrics.percentile(WAITS_MIN, 100) == 10


def test_the_median_of_an_odd_count_is_its_middle_value() -> None:
    assert metrics.median([30, 10, 20]) == 20
    assert metrics.percentile([42], 90) == 42


def test_nothing_to_rank_is_no_figure_rather_than_zero() -> None:
    assert metrics.median([]) is None
    assert metrics.percentile([], 90) is None


def test_a_percentile_outside_0_to_100_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        metrics.percentile([1, 2], 101)


def test_a_day_without_calls_has_no_abandon_rate_and_no_average_wait() -> None:
    quiet = metrics.call_figures([])
    assert (quiet.calls, quiet.abandon_rate, quiet.average_wait_s) == (0, None, None)
    assert metrics.rate(0, 0) is None
    assert metrics.format_percent(quiet.abandon_rate) == "–"


def test_calls_are_split_into_ivr_agents_abandoned_and_the_rest() -> None:
    day = metrics.call_figures(
        [
            CallGroup("request_created", None, 5),
            CallGroup("tracked", None, 2),
            CallGroup("ended_in_menu", None, 1),
            CallGroup("abandoned", None, 1),  # hung up in the menu: neither IVR-answered nor queued
            CallGroup("agent_queue", "bridged", 3, wait_total_s=90, waits=3),
            CallGroup("agent_queue", "hangup", 1, wait_total_s=150, waits=1),
            CallGroup("agent_queue", None, 1),  # still waiting when the day was read
            CallGroup("callback_requested", "leave", 1, wait_total_s=60, waits=1),  # left the queue for a callback
        ]
    )
    assert (day.calls, day.in_ivr, day.by_agents, day.abandoned, day.other) == (15, 8, 3, 1, 3)
    assert day.entered_queue == 6
    assert day.abandon_rate == pytest.approx(1 / 6)
    assert day.average_wait_s == 60  # (90 + 150 + 60) / 5 calls that waited


def test_time_to_assignment_and_breaches_of_the_sla() -> None:
    created = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
    minutes = [5, 20, 61, 90, -1]  # the last: a clock that ran backwards
    waits = metrics.assignment_waits([(created, created + timedelta(minutes=m)) for m in minutes])
    figures = metrics.assignment_figures(waits, sla_s=60 * 60)
    assert waits[-1] == 0
    assert (figures.assigned, figures.median_s, figures.late) == (5, 20 * 60, 2)
    assert figures.p90_s == pytest.approx((61 + 0.6 * 29) * 60)


def test_an_assignment_exactly_at_the_sla_is_in_time() -> None:
    assert metrics.assignment_figures([3600.0], sla_s=3600).late == 0
    assert metrics.assignment_figures([], sla_s=3600) == metrics.AssignmentFigures()


def test_the_busiest_districts_come_first_and_the_rest_are_summed() -> None:
    counts = [("AGRA", 2), ("LUCKNOW", 9), ("KANPUR NAGAR", 2), ("BANDA", 1)]
    assert metrics.top(counts, 2) == ([("LUCKNOW", 9), ("AGRA", 2)], 3)
    assert metrics.top([], 15) == ([], 0)


def test_an_indian_day_starts_at_1830_utc_the_evening_before() -> None:
    start, end = metrics.day_bounds(date(2025, 3, 10), "Asia/Kolkata")
    assert start == datetime(2025, 3, 9, 18, 30, tzinfo=UTC)
    assert end == datetime(2025, 3, 10, 18, 30, tzinfo=UTC)
    assert metrics.local_day(datetime(2025, 3, 9, 18, 30, tzinfo=UTC), "Asia/Kolkata") == date(2025, 3, 10)


def test_waits_read_as_a_person_says_them() -> None:
    assert metrics.format_duration(None) == "–"
    assert metrics.format_duration(44.6) == "45 s"
    assert metrics.format_duration(245) == "4 min 05 s"
    assert metrics.format_duration(18 * 60 + 31) == "18 min"  # past ten minutes, seconds are noise
    assert metrics.format_duration(2 * 3600 + 10 * 60 + 20) == "130 min"  # as the SLA is set: in minutes
    assert metrics.format_duration(26 * 3600 + 59 * 60) == "26 h"
    assert metrics.format_percent(0.25) == "25.0%"


def test_bars_are_drawn_to_scale_with_their_values() -> None:
    svg = charts.horizontal_bars([charts.Bar("LUCKNOW", 10), charts.Bar("AGRA", 5, "ok", "33.3%")], "By district")
    assert svg.startswith("<svg")
    assert 'aria-label="By district"' in svg
    assert 'width="190.0"' in svg
    assert 'width="95.0"' in svg
    assert ">5 · 33.3%</text>" in svg
    assert 'fill="#1b7f3b"' in svg


def test_charts_carry_no_style_attribute_and_escape_what_they_are_given() -> None:
    svg = charts.horizontal_bars([charts.Bar('<script>alert("x")</script>', 1)], "<b>")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "&lt;b&gt;" in svg
    assert "style=" not in svg


def test_a_long_district_name_is_shortened_on_the_chart_but_whole_in_its_tooltip() -> None:
    svg = charts.horizontal_bars([charts.Bar("SIDDHARTH NAGAR EXTENDED NAME", 3)], "By district")
    assert "<title>SIDDHARTH NAGAR EXTENDED NAME: 3</title>" in svg
    assert ">SIDDHARTH NAGAR EXT…</text>" in svg


def test_an_empty_chart_is_still_valid_svg() -> None:
    svg = charts.horizontal_bars([charts.Bar("new", 0)], "By status")
    assert 'width="0.0"' in svg
    assert svg.endswith("</svg>")


# -- the district ranking ---------------------------------------------------------------------------

MORNING = datetime(2025, 3, 10, 4, 30, tzinfo=UTC)


def made(
    district: str, assigned_min: int | None = None, done_min: int | None = None, rating: int | None = None
) -> metrics.RequestTimes:
    minute = timedelta(minutes=1)
    return metrics.RequestTimes(
        district,
        MORNING,
        MORNING + assigned_min * minute if assigned_min is not None else None,
        MORNING + done_min * minute if done_min is not None else None,
        rating,
    )


def test_outcomes_take_exact_medians_and_count_ratings_of_one_and_two_as_dissatisfied() -> None:
    found = metrics.outcomes([made("A", 10, 60, 1), made("A", 20, 90, 2), made("A", 40, None, 3), made("A")])
    assert (found.requests, found.assigned, found.completed, found.rated) == (4, 3, 2, 3)
    assert found.assignment_median_s == 20 * 60
    assert found.completion_median_s == 75 * 60  # the mean of the two middle values
    assert found.dissatisfied == 2
    assert found.dissatisfaction_rate == pytest.approx(2 / 3)
    assert found.average_rating == 2.0


def test_districts_rank_worst_first_ties_share_a_rank_and_the_unrated_come_last() -> None:
    rows = [made("AGRA", 5), made("KANPUR NAGAR", 5, 30, 1), made("LUCKNOW", 5, 30, 1), made("VARANASI", 5, 30, 5)]
    ranked = metrics.district_ranking(rows, {"VARANASI": {None: 2}})
    assert [(line.rank, line.district, line.escalated) for line in ranked] == [
        (1, "KANPUR NAGAR", 0),
        (1, "LUCKNOW", 0),  # the same figures: the same rank
        (3, "VARANASI", 2),
        (4, "AGRA", 0),  # nobody rated: after every rated district
    ]


def test_escalations_by_level_are_kept_once_the_ladder_gives_levels() -> None:
    [line] = metrics.district_ranking([made("AGRA")], {"AGRA": {1: 3, 2: 1}})
    assert line.escalated == 4
    assert line.by_level == ((1, 3), (2, 1))
