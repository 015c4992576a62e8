"""The supervisor's dashboard: one local calendar day of calls and requests, and what is open now.
District and state officers see its request figures for the requests they may see (a district
officer: their districts'); the helpline's call figures are the supervisors'.

Each figure is a GROUP BY or COUNT the database does (so a day of tens of thousands of calls stays
quick); console/metrics.py turns the fetched values into rates and percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import col

from console import auth, charts, labels, metrics, scope
from core import pincodes
from dispatch import lifecycle
from storage.models import CallLog, Direction, RequestStatus, Role, ServiceRequest

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
TOP_DISTRICTS = 15
OPEN = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
STATUS_COLOURS = {
    "new": "brand",
    "offered": "brand",
    "assigned": "ok",
    "completed": "ok",
    "closed": "muted",
    "escalated": "bad",
    "cancelled": "muted",
}
FIRST_DAY = date(2000, 1, 1)
UNREADABLE_DAY = labels.N_("That date could not be read; showing today.")


@dataclass(frozen=True)
class Figures:
    """Everything the page shows for one day."""

    calls: metrics.CallFigures
    created: dict[str, int]  # requests created that day, by status
    open_now: dict[str, int]  # every open request, by status, whenever it was created
    districts: list[tuple[str, int]]  # requests created that day, by district
    assignment: metrics.AssignmentFigures  # requests assigned that day
    waiting_past_sla: int  # unassigned now, and older than the SLA


@bp.get("")
@auth.requires(Role.SUPERVISOR, Role.ADMIN, *auth.OFFICERS)
def today() -> ResponseReturnValue:
    settings = auth.runtime().settings
    now, zone = auth.runtime().clock.now(), settings.call_centre.timezone
    this_day = metrics.local_day(now, zone)
    day = chosen_day(request.args.get("day"), this_day)
    start, end = metrics.day_bounds(day, zone)
    sla = timedelta(minutes=settings.console.assignment_sla_minutes)
    with auth.runtime().engine.connect() as db:
        figures = _figures(db, start, end, now - sla, sla, scope.visible())
    return render_template(
        "console/dashboard.html",
        day=day,
        this_day=this_day,
        figures=figures,
        sla_minutes=settings.console.assignment_sla_minutes,
        charts=_charts(figures),
        export_url=_export_url(day),
        one_day=timedelta(days=1),
        metrics=metrics,
        statuses=[status.value for status in RequestStatus],
    )


def chosen_day(raw: str | None, this_day: date) -> date:
    """The day asked for in ?day=YYYY-MM-DD; anything unreadable or out of range shows today, and says so."""
    if not raw:
        return this_day
    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= this_day + timedelta(days=366):
        flash(UNREADABLE_DAY)
        return this_day
    return day


def _figures(
    db: sa.Connection,
    start: datetime,
    end: datetime,
    overdue_before: datetime,
    sla: timedelta,
    mine: sa.ColumnElement[bool],
) -> Figures:
    """The day's figures; those of requests only of the requests `mine` selects."""
    created = col(ServiceRequest.created_at)
    waits = metrics.assignment_waits(_assignments(db, start, end, mine))
    return Figures(
        calls=metrics.call_figures(_call_groups(db, start, end)),
        created=_by_status(db, created >= start, created < end, mine),
        open_now=_by_status(db, col(ServiceRequest.status).in_(OPEN), mine),
        districts=_by_district(db, start, end, mine),
        assignment=metrics.assignment_figures(waits, sla.total_seconds()),
        waiting_past_sla=_waiting_past_sla(db, overdue_before, mine),
    )


def _call_groups(db: sa.Connection, start: datetime, end: datetime) -> list[metrics.CallGroup]:
    """The day's inbound calls counted by outcome and queue result, with their queue waits summed."""
    outcome, result, wait, started = (
        col(CallLog.outcome),
        col(CallLog.queue_result),
        col(CallLog.queue_wait_s),
        col(CallLog.started_at),
    )
    query = (
        sa.select(outcome, result, sa.func.count(), sa.func.coalesce(sa.func.sum(wait), 0), sa.func.count(wait))
        .where(col(CallLog.direction) == Direction.INBOUND, started >= start, started < end)
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


def _by_district(
    db: sa.Connection, start: datetime, end: datetime, mine: sa.ColumnElement[bool]
) -> list[tuple[str, int]]:
    district, created = col(ServiceRequest.district), col(ServiceRequest.created_at)
    query = sa.select(district, sa.func.count()).where(created >= start, created < end, mine).group_by(district)
    return [(name, count) for name, count in db.execute(query)]


def _assignments(
    db: sa.Connection, start: datetime, end: datetime, mine: sa.ColumnElement[bool]
) -> list[tuple[datetime, datetime]]:
    """Creation and assignment moments of the requests assigned that day (two columns, no ORM objects)."""
    created, assigned = col(ServiceRequest.created_at), col(ServiceRequest.assigned_at)
    query = sa.select(created, assigned).where(assigned >= start, assigned < end, mine)
    return [(made, at) for made, at in db.execute(query) if at is not None]


def _waiting_past_sla(db: sa.Connection, overdue_before: datetime, mine: sa.ColumnElement[bool]) -> int:
    """Requests nobody has taken yet that have already waited longer than the SLA."""
    query = sa.select(sa.func.count()).where(
        col(ServiceRequest.status).in_(lifecycle.UNASSIGNED), col(ServiceRequest.created_at) < overdue_before, mine
    )
    return int(db.execute(query).scalar_one())


def _charts(figures: Figures) -> dict[str, str]:
    """The three charts, drawn in the console's language."""
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
    return {
        "calls": charts.horizontal_bars(call_bars, t("Calls")) if calls.calls else "",
        "status": charts.horizontal_bars(status_bars, t("By status")) if figures.created else "",
        "district": charts.horizontal_bars(district_bars, t("By district")) if district_bars else "",
    }


def _export_url(day: date) -> str:
    """The requests page's CSV export of the requests created that day."""
    dates: dict[str, Any] = {"from": day.isoformat(), "to": day.isoformat()}  # "from" cannot be a keyword
    return url_for("console.requests.export", **dates)
