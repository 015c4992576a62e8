"""The supervisor's figures, computed from plain values the database hands over: no Flask, no SQL.

Percentiles interpolate linearly between the two closest ranks (numpy's default, Excel's
PERCENTILE.INC), so the median of an even count is the mean of its two middle values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
