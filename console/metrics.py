"""The supervisor's figures, computed from plain values the database hands over: no Flask, no SQL.

Percentiles interpolate linearly between the two closest ranks (numpy's default, Excel's
PERCENTILE.INC), so the median of an even count is the mean of its two middle values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Outcomes of a call that the IVR handled on its own (see ivr/calllog.py).
IVR_OUTCOMES = frozenset({"request_created", "tracked", "callback_requested", "ended_in_menu"})
BRIDGED = "bridged"  # Twilio's QueueResult: an agent took the call
HUNG_UP = "hangup"  # Twilio's QueueResult: the caller hung up while waiting
NO_FIGURE = "–"  # as the rest of the console shows a missing figure


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0–100) by linear interpolation; None when there is nothing to rank."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, not {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def rate(part: int, whole: int) -> float | None:
    """part / whole, or None when there is no whole: a rate of nothing is no figure, not 0%."""
    return part / whole if whole else None


def entered_queue(outcome: str | None, queue_result: str | None) -> bool:
    """The caller reached the agent queue: Twilio reported a queue result, or the flow sent them there."""
    return queue_result is not None or outcome == "agent_queue"


def answered_in_ivr(outcome: str | None, queue_result: str | None) -> bool:
    """The IVR finished the call on its own, without the agent queue."""
    return outcome in IVR_OUTCOMES and not entered_queue(outcome, queue_result)


@dataclass(frozen=True)
class CallGroup:
    """Inbound calls sharing one outcome and one queue result, as a GROUP BY returns them."""

    outcome: str | None
    queue_result: str | None
    calls: int
    wait_total_s: int = 0
    waits: int = 0  # calls of the group with a recorded queue wait


@dataclass(frozen=True)
class CallFigures:
    """A day's inbound calls, as the supervisor reads them."""

    calls: int = 0
    in_ivr: int = 0
    entered_queue: int = 0
    by_agents: int = 0
    abandoned: int = 0
    wait_total_s: int = 0
    waits: int = 0

    @property
    def other(self) -> int:
        """Calls neither answered nor abandoned in the queue: hung up in the menu, still going, left the queue."""
        return self.calls - self.in_ivr - self.by_agents - self.abandoned

    @property
    def abandon_rate(self) -> float | None:
        return rate(self.abandoned, self.entered_queue)

    @property
    def average_wait_s(self) -> float | None:
        return self.wait_total_s / self.waits if self.waits else None


def call_figures(groups: Iterable[CallGroup]) -> CallFigures:
    """Sum the grouped calls into the day's figures."""
    totals = dict.fromkeys(("calls", "in_ivr", "entered_queue", "by_agents", "abandoned", "wait_total_s", "waits"), 0)
    for group in groups:
        totals["calls"] += group.calls
        totals["in_ivr"] += group.calls if answered_in_ivr(group.outcome, group.queue_result) else 0
        totals["entered_queue"] += group.calls if entered_queue(group.outcome, group.queue_result) else 0
        totals["by_agents"] += group.calls if group.queue_result == BRIDGED else 0
        totals["abandoned"] += group.calls if group.queue_result == HUNG_UP else 0
        totals["wait_total_s"] += group.wait_total_s
        totals["waits"] += group.waits
    return CallFigures(**totals)


@dataclass(frozen=True)
class AssignmentFigures:
    """How long requests waited for a worker, and how many waited longer than the SLA allows."""

    assigned: int = 0
    median_s: float | None = None
    p90_s: float | None = None
    late: int = 0


def assignment_waits(moments: Iterable[tuple[datetime, datetime]]) -> list[float]:
    """Seconds from creation to assignment; a clock that ran backwards counts as instant, not negative."""
    return [max((assigned - created).total_seconds(), 0.0) for created, assigned in moments]


def assignment_figures(waits: Sequence[float], sla_s: float) -> AssignmentFigures:
    """Median, 90th percentile and SLA breaches of the waits for assignment."""
    late = sum(1 for wait in waits if wait > sla_s)
    return AssignmentFigures(len(waits), median(waits), percentile(waits, 90), late)


def top(counts: Iterable[tuple[str, int]], n: int) -> tuple[list[tuple[str, int]], int]:
    """The n largest counts (ties by name), and the sum of the rest."""
    ordered = sorted(counts, key=lambda item: (-item[1], item[0]))
    return ordered[:n], sum(count for _, count in ordered[n:])


def local_day(moment: datetime, zone: str) -> date:
    """The calendar day the call centre is living at `moment`."""
    return moment.astimezone(ZoneInfo(zone)).date()


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """A local calendar day as the UTC range [start, end) the database is queried with."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def format_duration(seconds: float | None, units: tuple[str, str, str] = ("s", "min", "h")) -> str:
    """A wait short enough for a tile, in minutes like the SLA itself: 45 s, 4 min 05 s, 111 min, 26 h
    (`units`: seconds, minutes and hours in the reader's language)."""
    if seconds is None:
        return NO_FIGURE
    s, m, h = units
    whole = round(seconds)
    if whole < 60:
        return f"{whole} {s}"
    if whole < 600:
        return f"{whole // 60} {m} {whole % 60:02d} {s}"
    if whole < 1000 * 60:
        return f"{whole // 60} {m}"
    return f"{whole // 3600} {h}"


def format_percent(share: float | None) -> str:
    return NO_FIGURE if share is None else f"{share * 100:.1f}%"


# -- the reports the state asks for (console/reports.py fetches the rows) ---------------------------

DISSATISFIED_AT_MOST = 2  # a rating of 1 or 2 of 5 is a dissatisfied citizen, as UP's IGRS counts them


@dataclass(frozen=True)
class RequestTimes:
    """One request's moments and rating, as the report's query returns them (plain values)."""

    district: str
    created_at: datetime
    assigned_at: datetime | None = None
    completed_at: datetime | None = None
    rating: int | None = None
    worker_id: int | None = None
    rework: bool = False  # a request filed again for a job done badly (ServiceRequest.rework_of_id, once it exists)


@dataclass(frozen=True)
class Outcomes:
    """How a set of requests went: how fast they were assigned and done, and what the citizens said."""

    requests: int = 0
    assigned: int = 0
    assignment_median_s: float | None = None
    completed: int = 0
    completion_median_s: float | None = None
    rated: int = 0
    rating_total: int = 0
    dissatisfied: int = 0
    reworks: int = 0

    @property
    def dissatisfaction_rate(self) -> float | None:
        return rate(self.dissatisfied, self.rated)

    @property
    def average_rating(self) -> float | None:
        return self.rating_total / self.rated if self.rated else None

    @property
    def rework_rate(self) -> float | None:
        return rate(self.reworks, self.requests)


def _seconds(start: datetime, end: datetime | None) -> float | None:
    """From one moment to a later one; a clock that ran backwards counts as instant, not negative."""
    return None if end is None else max((end - start).total_seconds(), 0.0)


def outcomes(rows: Iterable[RequestTimes]) -> Outcomes:
    """The medians, counts and ratings of the requests."""
    rows = list(rows)
    to_assign = [s for s in (_seconds(r.created_at, r.assigned_at) for r in rows) if s is not None]
    to_complete = [s for s in (_seconds(r.created_at, r.completed_at) for r in rows) if s is not None]
    ratings = [r.rating for r in rows if r.rating is not None]
    return Outcomes(
        requests=len(rows),
        assigned=len(to_assign),
        assignment_median_s=median(to_assign),
        completed=len(to_complete),
        completion_median_s=median(to_complete),
        rated=len(ratings),
        rating_total=sum(ratings),
        dissatisfied=sum(1 for rating in ratings if rating <= DISSATISFIED_AT_MOST),
        reworks=sum(1 for r in rows if r.rework),
    )


@dataclass(frozen=True)
class DistrictRank:
    """One district's line of the ranking: its rank (1: the most dissatisfied), outcomes and escalations."""

    district: str
    outcomes: Outcomes
    escalated: int = 0  # requests escalated at least once
    by_level: tuple[tuple[int, int], ...] = ()  # (escalation level, requests), once the ladder keeps levels
    rank: int = 0


def district_ranking(
    rows: Iterable[RequestTimes], escalated: Mapping[str, Mapping[int | None, int]]
) -> list[DistrictRank]:
    """Every district with requests, worst first: by dissatisfaction rate (a district nobody rated
    comes after those rated), then escalations, then median time to completion. Tied districts share a
    rank ("1, 2, 2, 4"); within a tie, by name."""
    by_district: dict[str, list[RequestTimes]] = {}
    for row in rows:
        by_district.setdefault(row.district, []).append(row)
    lines = [
        DistrictRank(
            district,
            outcomes(found),
            sum(escalated.get(district, {}).values()),
            tuple(sorted((lvl, n) for lvl, n in escalated.get(district, {}).items() if lvl is not None)),
        )
        for district, found in by_district.items()
    ]
    lines.sort(key=lambda line: (_badness(line), line.district))
    ranked: list[DistrictRank] = []
    for index, line in enumerate(lines):
        tied = ranked and _badness(ranked[-1]) == _badness(line)
        ranked.append(replace(line, rank=ranked[-1].rank if tied else index + 1))
    return ranked


def _badness(line: DistrictRank) -> tuple[float, int, float]:
    """Sorts ascending, worst first: each figure negated, a missing one as the best."""
    share = line.outcomes.dissatisfaction_rate
    completion = line.outcomes.completion_median_s
    return (-share if share is not None else 1.0, -line.escalated, -completion if completion is not None else 0.0)


def minutes(seconds: float | None) -> str:
    """A duration for a spreadsheet: minutes with one decimal, empty when there is none."""
    return "" if seconds is None else f"{seconds / 60:.1f}"


def share(part: float | None) -> str:
    """A rate for a spreadsheet: a percentage with one decimal, empty when there is none."""
    return "" if part is None else f"{part * 100:.1f}"
