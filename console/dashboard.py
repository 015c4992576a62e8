"""The supervisor's dashboard: one local calendar day of calls and requests (hour by hour, districts
ranked), of every district or of one, and a live panel of what is happening now. District and state
officers see its request figures for the requests they may see (a district officer: their
districts'); the helpline's call figures are the supervisors'.

Each figure is a GROUP BY or COUNT the database does (so a day of tens of thousands of calls stays
quick); console/metrics.py turns the fetched values into rates and percentiles. The live panel is
counts only (Redis, and indexed counts of the open), fetched again every few seconds by console.js.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import redis
import sqlalchemy as sa
from flask import Blueprint, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col

from console import auth, calls, charts, labels, metrics, reports
from console.forms import plain
from console.scope import my_districts
from core import pincodes
from dispatch import lifecycle
from storage import agents, callqueue
from storage.models import CallLog, Direction, RequestStatus, Role, ServiceRequest

log = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
TOP_DISTRICTS = 15
OPEN = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
OPEN_NAMES = [status.value for status in OPEN]
STATUS_COLOURS = {
    "new": "brand",
    "offered": "brand",
    "assigned": "ok",
    "completed": "ok",
    "closed": "muted",
    "escalated": "bad",
    "cancelled": "muted",
}
UNKNOWN_DISTRICT = labels.N_("That district is not in the service area; showing every district.")
# A call still without a final status after this lost its last callback: it is not in progress.
CALL_LASTS_AT_MOST = timedelta(seconds=callqueue.CALL_TTL_S)


@dataclass(frozen=True)
class Scope:
    """What the figures count: everything, or one district's requests (and the calls that filed them)."""

    district: str = ""
    allowed: tuple[str, ...] | None = None  # the districts the user may see (a district officer's); None: all

    def requests(self) -> list[sa.ColumnElement[bool]]:
        if self.district:
            return [col(ServiceRequest.district) == self.district]
        return [] if self.allowed is None else [col(ServiceRequest.district).in_(self.allowed)]

    def ranked(self, line: metrics.DistrictRank) -> bool:
        """Whether the ranking's line for a district is shown."""
        if self.district:
            return line.district == self.district
        return self.allowed is None or line.district in self.allowed

    def choices(self) -> tuple[str, ...]:
        return service_districts() if self.allowed is None else self.allowed

    def calls(self) -> list[sa.ColumnElement[bool]]:
        """A call has no district of its own: it is the district's when the request it filed is."""
        if not self.district:
            return []
        theirs = sa.select(col(ServiceRequest.id)).where(col(ServiceRequest.district) == self.district)
        return [col(CallLog.request_id).in_(theirs)]


@dataclass(frozen=True)
class Figures:
    """Everything the page shows for one day."""

    calls: metrics.CallFigures
    created: dict[str, int]  # requests created that day, by status
    open_now: dict[str, int]  # every open request, by status, whenever it was created
    districts: list[tuple[str, int]]  # requests created that day, by district
    assignment: metrics.AssignmentFigures  # requests assigned that day
    waiting_past_sla: int  # unassigned now, and older than the SLA
    hours: list[tuple[int, int]]  # (inbound calls, requests made) in each hour of the day
    ranking: list[metrics.DistrictRank]  # the day's district ranking (a chosen district: its line only)


@dataclass(frozen=True)
class LiveFigures:
    """What is happening now; None where Redis could not be read."""

    waiting: int | None  # callers waiting for an agent, in the whole helpline
    longest_wait_s: int | None
    waiting_here: int | None  # of them, those whose PIN code is in the chosen district
    calls_in_progress: int
    agents_busy: int | None  # holding a caller (their desk phone ringing, or talking) or in wrap-up after one
    agents_ready: int | None  # ready for the next caller
    open_now: dict[str, int]  # open requests by status (of the chosen district)
    up_the_ladder: int  # of them, those past the escalation ladder's first rung (dispatch/ladder)


@bp.get("")
@auth.requires(Role.SUPERVISOR, Role.ADMIN, *auth.OFFICERS)
def today() -> ResponseReturnValue:
    settings = auth.runtime().settings
    now, zone = auth.runtime().clock.now(), settings.call_centre.timezone
    this_day = metrics.local_day(now, zone)
    day = reports.chosen_day(request.args.get("day"), this_day)
    sla = timedelta(minutes=settings.console.assignment_sla_minutes)
    with auth.runtime().engine.connect() as db:
        scope = chosen_scope(request.args.get("district"), allowed=my_districts(Session(db)))
        figures = _figures(db, day, scope, now - sla, sla)
        live_now = live_figures(db, scope)
        wrap_up_codes = calls.day_codes(db, *metrics.day_bounds(day, zone))
    return render_template(
        "console/dashboard.html",
        day=day,
        this_day=this_day,
        district=scope.district,
        districts=scope.choices(),
        figures=figures,
        live=live_now,
        open_statuses=OPEN_NAMES,
        sla_minutes=settings.console.assignment_sla_minutes,
        charts=_charts(figures, day, zone),
        export_url=_export_url(day, scope),
        ranking_url=url_for("console.reports.districts", **_dates(day)),
        ranking_columns=reports.RANKING_COLUMNS,
        one_day=timedelta(days=1),
        metrics=metrics,
        statuses=[status.value for status in RequestStatus],
        zone=zone,
        wrap_up_codes=wrap_up_codes,
        code_name=calls.code_name,
    )


@bp.get("/live")
@auth.requires(Role.SUPERVISOR, Role.ADMIN, *auth.OFFICERS)
def live() -> ResponseReturnValue:
    """The live panel alone, fetched again every few seconds."""
    with auth.runtime().engine.connect() as db:
        scope = chosen_scope(request.args.get("district"), quiet=True, allowed=my_districts(Session(db)))
        figures = live_figures(db, scope)
    return render_template(
        "console/dashboard_live.html", live=figures, district=scope.district, open_statuses=OPEN_NAMES
    )


@cache
def _districts_of_state(state: str) -> tuple[str, ...]:
    return tuple(pincodes.districts(state))


def service_districts() -> tuple[str, ...]:
    """The districts of the service area, as the directory spells them: the filter's choices."""
    return _districts_of_state(auth.runtime().settings.service_area.state)


def chosen_scope(raw: str | None, quiet: bool = False, allowed: tuple[str, ...] | None = None) -> Scope:
    """?district=…, a district of the service area (of `allowed`, a district officer's, when given);
    anything else is every district the user may see, and says so."""
    district = plain(raw or "", 80).upper()
    if not district:
        return Scope(allowed=allowed)
    if district not in (service_districts() if allowed is None else allowed):
        if not quiet:
            flash(UNKNOWN_DISTRICT)
        return Scope(allowed=allowed)
    return Scope(district, allowed)


def _figures(db: sa.Connection, day: date, scope: Scope, overdue_before: datetime, sla: timedelta) -> Figures:
    span = reports.span_of(day, day)
    start, end = span.start, span.end
    created = col(ServiceRequest.created_at)
    waits = metrics.assignment_waits(_assignments(db, start, end, scope))
    ranking = reports.ranking(db, span)
    return Figures(
        calls=metrics.call_figures(_call_groups(db, start, end, scope)),
        created=_by_status(db, created >= start, created < end, *scope.requests()),
        open_now=_by_status(db, col(ServiceRequest.status).in_(OPEN), *scope.requests()),
        districts=_by_district(db, start, end, scope),
        assignment=metrics.assignment_figures(waits, sla.total_seconds()),
        waiting_past_sla=_waiting_past_sla(db, overdue_before, scope),
        hours=_hours(db, start, end, scope),
        ranking=[line for line in ranking if scope.ranked(line)],
    )


def _call_groups(db: sa.Connection, start: datetime, end: datetime, scope: Scope) -> list[metrics.CallGroup]:
    """The day's inbound calls counted by outcome and queue result, with their queue waits summed."""
    outcome, result, wait, started = (
        col(CallLog.outcome),
        col(CallLog.queue_result),
        col(CallLog.queue_wait_s),
        col(CallLog.started_at),
    )
    query = (
        sa.select(outcome, result, sa.func.count(), sa.func.coalesce(sa.func.sum(wait), 0), sa.func.count(wait))
        .where(col(CallLog.direction) == Direction.INBOUND, started >= start, started < end, *scope.calls())
        .group_by(outcome, result)
    )
    return [
        metrics.CallGroup(outcome, result, calls, int(total or 0), waits)
        for outcome, result, calls, total, waits in db.execute(query)
    ]


def _by_status(db: sa.Connection, *conditions: sa.ColumnElement[bool]) -> dict[str, int]:
    status = col(ServiceRequest.status)
    query = sa.select(status, sa.func.count()).where(*conditions).group_by(status)
    return {RequestStatus(found).value: count for found, count in db.execute(query)}


def _by_district(db: sa.Connection, start: datetime, end: datetime, scope: Scope) -> list[tuple[str, int]]:
    district, created = col(ServiceRequest.district), col(ServiceRequest.created_at)
    query = (
        sa.select(district, sa.func.count())
        .where(created >= start, created < end, *scope.requests())
        .group_by(district)
    )
    return [(name, count) for name, count in db.execute(query)]


def _assignments(db: sa.Connection, start: datetime, end: datetime, scope: Scope) -> list[tuple[datetime, datetime]]:
    """Creation and assignment moments of the requests assigned that day (two columns, no ORM objects)."""
    created, assigned = col(ServiceRequest.created_at), col(ServiceRequest.assigned_at)
    query = sa.select(created, assigned).where(assigned >= start, assigned < end, *scope.requests())
    return [(made, at) for made, at in db.execute(query) if at is not None]


def _waiting_past_sla(db: sa.Connection, overdue_before: datetime, scope: Scope) -> int:
    """Requests nobody has taken yet that have already waited longer than the SLA."""
    query = sa.select(sa.func.count()).where(
        col(ServiceRequest.status).in_(lifecycle.UNASSIGNED),
        col(ServiceRequest.created_at) < overdue_before,
        *scope.requests(),
    )
    return int(db.execute(query).scalar_one())


def _hours(db: sa.Connection, start: datetime, end: datetime, scope: Scope) -> list[tuple[int, int]]:
    """Inbound calls and requests made in each hour of the day (23 or 25 hours where clocks change)."""
    inbound = col(CallLog.direction) == Direction.INBOUND
    calls = _per_hour(db, col(CallLog.started_at), start, end, inbound, *scope.calls())
    made = _per_hour(db, col(ServiceRequest.created_at), start, end, *scope.requests())
    return [(calls.get(hour, 0), made.get(hour, 0)) for hour in range(round((end - start).total_seconds() / 3600))]


def _per_hour(
    db: sa.Connection, moment: Any, start: datetime, end: datetime, *where: sa.ColumnElement[bool]
) -> dict[int, int]:
    """Rows counted by the whole hours from `start` to their moment, grouped by the database."""
    hour = _hours_since(db.dialect.name, moment, start).label("hour")
    query = sa.select(hour, sa.func.count()).where(moment >= start, moment < end, *where).group_by(hour)
    return {int(found): int(count) for found, count in db.execute(query)}


def _hours_since(dialect: str, moment: Any, start: datetime) -> sa.ColumnElement[Any]:
    """Whole hours from `start` to `moment` in whole seconds (PostgreSQL's epoch, SQLite's strftime('%s')).
    The start is a literal, not a parameter, so that the GROUP BY is the very expression selected."""
    origin: sa.ColumnElement[Any] = sa.literal_column(str(int(start.timestamp())))
    if dialect == "postgresql":
        return sa.func.floor((sa.extract("epoch", moment) - origin) / 3600)
    return (sa.cast(sa.func.strftime("%s", moment), sa.Integer) - origin) / 3600


def live_figures(db: sa.Connection, scope: Scope) -> LiveFigures:
    """Who waits for an agent, calls under way, agents busy, open requests: counts, nothing heavier."""
    now = auth.runtime().clock.now()
    in_progress = _calls_in_progress(db, now)
    open_now = _by_status(db, col(ServiceRequest.status).in_(OPEN), *scope.requests())
    climbed = sa.select(sa.func.count()).where(
        col(ServiceRequest.status).in_(OPEN), col(ServiceRequest.escalation_level) > 1, *scope.requests()
    )
    up_the_ladder = int(db.execute(climbed).scalar_one())
    try:
        connection = auth.runtime().redis
        waiting = callqueue.waiting(connection, now.timestamp())
        desk = agents.counts(connection)
    except redis.RedisError:
        log.warning("Redis unreachable: the dashboard cannot show who is waiting")
        return LiveFigures(None, None, None, len(in_progress), None, None, open_now, up_the_ladder)
    longest = max((w.wait_s(now.timestamp()) for w in waiting), default=None)
    here = sum(1 for w in waiting if _district_of(w.call.pincode) == scope.district) if scope.district else None
    busy = desk[agents.AgentState.ON_CALL] + desk[agents.AgentState.WRAP_UP]
    ready = desk[agents.AgentState.READY]
    return LiveFigures(len(waiting), longest, here, len(in_progress), busy, ready, open_now, up_the_ladder)


def _calls_in_progress(db: sa.Connection, now: datetime) -> set[str]:
    """Inbound calls begun in the last hours that have no final status yet."""
    query = sa.select(col(CallLog.call_sid)).where(
        col(CallLog.direction) == Direction.INBOUND,
        col(CallLog.ended_at).is_(None),
        col(CallLog.started_at) >= now - CALL_LASTS_AT_MOST,
    )
    return set(db.execute(query).scalars())


def _district_of(pincode: str) -> str | None:
    place = pincodes.lookup(pincode) if pincode else None
    return place.district if place else None


def _charts(figures: Figures, day: date, zone: str) -> dict[str, str]:
    """The charts, drawn in the console's language."""
    t = labels.translate
    calls = figures.calls
    parts = [
        (t("Answered in IVR"), calls.in_ivr, "ok"),
        (t("Answered by agents"), calls.by_agents, "brand"),
        (t("Abandoned in queue"), calls.abandoned, "bad"),
        (t("Other"), calls.other, "muted"),
    ]
    call_bars = [
        charts.Bar(label, count, colour, metrics.format_percent(metrics.rate(count, calls.calls)))
        for label, count, colour in parts
    ]
    created = figures.created
    status_bars = [charts.Bar(t(s.value), created.get(s.value, 0), STATUS_COLOURS[s.value]) for s in RequestStatus]
    shown, rest = metrics.top(figures.districts, TOP_DISTRICTS)
    district_bars = [charts.Bar(pincodes.display_name(name, labels.language()), count) for name, count in shown]
    if rest:
        district_bars.append(charts.Bar(t("Other districts"), rest, "muted"))
    hourly = [
        charts.Series(t("Calls"), [hour[0] for hour in figures.hours], "brand"),
        charts.Series(t("Requests"), [hour[1] for hour in figures.hours], "ok"),
    ]
    busy = any(calls_ or made for calls_, made in figures.hours)
    return {
        "hourly": charts.hourly_columns(hourly, _hour_names(day, zone, len(figures.hours)), t("By hour"))
        if busy
        else "",
        "calls": charts.horizontal_bars(call_bars, t("Calls")) if calls.calls else "",
        "status": charts.horizontal_bars(status_bars, t("By status")) if figures.created else "",
        "district": charts.horizontal_bars(district_bars, t("By district")) if district_bars else "",
    }


def _hour_names(day: date, zone: str, hours: int) -> list[str]:
    """'00' … '23' on the call centre's clock (a day the clocks change repeats or skips one)."""
    start = datetime.combine(day, time(), ZoneInfo(zone)).astimezone(UTC)
    return [(start + timedelta(hours=hour)).astimezone(ZoneInfo(zone)).strftime("%H") for hour in range(hours)]


def _dates(day: date) -> dict[str, Any]:
    return {"from": day.isoformat(), "to": day.isoformat()}  # "from" cannot be a keyword


def _export_url(day: date, scope: Scope) -> str:
    """The requests page's CSV export of the requests created that day (in the chosen district)."""
    chosen: dict[str, Any] = {"district": scope.district} if scope.district else {}
    return url_for("console.requests.export", **_dates(day), **chosen)
