"""A supervisor's scores read against the scorecard, and an agent's quality over their reviews: pure."""

from __future__ import annotations

import pytest

from callcentre import scorecard
from callcentre.scorecard import Review
from core.settings import Quality, ScorecardItem

CARD = Quality(
    scorecard=(
        ScorecardItem(code="greeting", name_en="Greeting", name_hi="अभिवादन", max_points=10),
        ScorecardItem(code="resolution", name_en="Resolution", name_hi="समाधान", max_points=40),
    ),
    pass_mark=35,
)


def test_every_item_scored_within_its_points_is_a_review_that_passes_at_the_pass_mark() -> None:
    read = scorecard.read(CARD, {"points_greeting": "5", "points_resolution": "30", "comment_resolution": " ok\x07 "})
    assert read.errors == {}
    assert read.scores == {"greeting": {"points": 5, "comment": ""}, "resolution": {"points": 30, "comment": "ok"}}
    assert (read.points, read.max_points, read.passed) == (35, 50, True)
    assert not scorecard.read(CARD, {"points_greeting": "4", "points_resolution": "30"}).passed


@pytest.mark.parametrize("points", ["11", "-1", "", "1.5", "١", "0x1", "9999", " "])
def test_points_outside_an_items_range_or_not_a_number_are_an_error(points: str) -> None:
    read = scorecard.read(CARD, {"points_greeting": points, "points_resolution": "40"})
    assert read.errors == {"greeting": "points"}
    assert not read.passed


def test_a_comment_over_500_characters_is_an_error_not_cut() -> None:
    read = scorecard.read(CARD, {"points_greeting": "1", "points_resolution": "1", "comment_greeting": "a" * 501})
    assert read.errors == {"greeting": "comment"}


def review(agent: int, greeting: int, resolution: int) -> Review:
    points = greeting + resolution
    return Review(
        agent, points, 50, points >= 35, {"greeting": {"points": greeting}, "resolution": {"points": resolution}}
    )


def test_each_agents_quality_average_pass_rate_and_weakest_item() -> None:
    lines = scorecard.by_agent([review(2, 10, 40), review(1, 10, 20), review(1, 2, 38)], CARD)
    # Agent 1: greeting 6 of 10 on average (60%), resolution 29 of 40 (72.5%): greeting is the weakest.
    # Agent 2: full marks, nothing found wanting.
    assert [(q.agent_id, q.reviewed, q.pass_rate, q.weakest) for q in lines] == [
        (1, 2, 0.5, "greeting"),
        (2, 1, 1.0, None),
    ]
    assert lines[0].average_percent == pytest.approx((30 / 50 + 40 / 50) / 2 * 100)
    assert lines[1].average_percent == pytest.approx(100.0)
