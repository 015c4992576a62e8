"""Quality review of agent calls, pure: a supervisor's scores read against `quality.scorecard`
(each item 0..its points, with a comment), and each agent's quality over many reviews: calls
reviewed, average score, pass rate and their weakest item."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.settings import Quality
from core.text import plain

COMMENT_MAX = 500


@dataclass(frozen=True)
class Scored:
    """A review as read from the form: `scores` code → {points, comment}; `errors` code → what is wrong."""

    scores: dict[str, dict[str, object]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    points: int = 0
    max_points: int = 0
    passed: bool = False


def read(quality: Quality, form: Mapping[str, str]) -> Scored:
    """Every item of the scorecard scored (`points_<code>`), 0 to its maximum, with an optional
    comment (`comment_<code>`, at most COMMENT_MAX characters); anything else is an error."""
    scores: dict[str, dict[str, object]] = {}
    errors: dict[str, str] = {}
    for item in quality.scorecard:
        raw = form.get(f"points_{item.code}", "").strip()
        comment = plain(form.get(f"comment_{item.code}", ""), COMMENT_MAX + 1)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and int(raw) <= item.max_points):
            errors[item.code] = "points"
        elif len(comment) > COMMENT_MAX:
            errors[item.code] = "comment"
        else:
            scores[item.code] = {"points": int(raw), "comment": comment}
    if errors:
        return Scored(scores, errors)
    points = sum(int(str(s["points"])) for s in scores.values())
    return Scored(scores, {}, points, quality.max_points, points >= quality.pass_mark)


@dataclass(frozen=True)
class Review:
    """One saved review, as the quality report counts it."""

    agent_id: int
    points: int
    max_points: int
    passed: bool
    scores: Mapping[str, Mapping[str, object]]


@dataclass(frozen=True)
class AgentQuality:
    agent_id: int
    reviewed: int
    average_percent: float | None  # of the points a call could have had
    pass_rate: float | None
    weakest: str | None  # the item with the lowest share of its points, on average


def by_agent(reviews: Iterable[Review], quality: Quality) -> list[AgentQuality]:
    """Each reviewed agent's quality, agents in id order."""
    grouped: dict[int, list[Review]] = {}
    for review in reviews:
        grouped.setdefault(review.agent_id, []).append(review)
    return [_agent_quality(agent_id, grouped[agent_id], quality) for agent_id in sorted(grouped)]


def _agent_quality(agent_id: int, reviews: list[Review], quality: Quality) -> AgentQuality:
    shares = [r.points / r.max_points for r in reviews if r.max_points]
    average = sum(shares) / len(shares) * 100 if shares else None
    return AgentQuality(
        agent_id, len(reviews), average, sum(r.passed for r in reviews) / len(reviews), _weakest(reviews, quality)
    )


def _weakest(reviews: list[Review], quality: Quality) -> str | None:
    """The scorecard's item these reviews gave the lowest share of its points (the first on a tie)."""
    averages: list[tuple[float, int, str]] = []
    for order, item in enumerate(quality.scorecard):
        given = [int(str(r.scores[item.code]["points"])) for r in reviews if item.code in r.scores]
        if given:
            averages.append((sum(given) / len(given) / item.max_points, order, item.code))
    if not averages or min(averages)[0] >= 1:
        return None  # nothing found wanting
    return min(averages)[2]
