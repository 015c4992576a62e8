"""The reports the state asks for: districts ranked on dissatisfaction (as UP's grievance helpline
ranks them), with time to assignment and completion, escalations and rework; and each agency's own
report (its workers' jobs, times, ratings, declines and timeouts, dissatisfied citizens). On screen
and as CSV; a provider user sees only its own agency.

The database hands over plain columns (one line a request, or counts it groups); console/metrics.py
computes medians and rates, so that they are exact on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col

from console import auth, metrics, present, spreadsheet
from console.auth import MANAGERS, requires, runtime
from console.labels import N_
from core import pincodes
from storage.audit import AuditAction
from storage.models import AuditEvent, Offer, OfferStatus, Provider, Role, ServiceRequest, Worker

bp = Blueprint("reports", __name__, url_prefix="/reports")
Db = sa.Connection | Session  # the dashboard reads with a connection, the report pages with a session
LONGEST_SPAN_DAYS = 366
FIRST_DAY = date(2000, 1, 1)
UNREADABLE_DAY = N_("That date could not be read; showing today.")
SPAN_TOO_LONG = N_("A report covers at most a year; showing the year up to the last day chosen.")
SPAN_BACKWARDS = N_("The first day was after the last; showing the last day only.")

# The escalation ladder's rung a request is on (dispatch.ladder): the ranking counts escalations by it.
ESCALATION_LEVEL = col(ServiceRequest.escalation_level)
# A request filed again for a job done badly (dispatch.rework): the ranking's rework rate.
REWORK = col(ServiceRequest.rework_of_id).is_not(None)


@dataclass(frozen=True)
class Span:
    """Local calendar days, first to last (both counted), and their UTC bounds [start, end)."""

    first: date
    last: date
    start: datetime
    end: datetime

    def args(self) -> dict[str, Any]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}

    def name(self) -> str:
        return self.first.strftime("%Y%m%d") + ("" if self.first == self.last else self.last.strftime("-%Y%m%d"))


def span_of(first: date, last: date) -> Span:
    zone = runtime().settings.call_centre.timezone
    return Span(first, last, metrics.day_bounds(first, zone)[0], metrics.day_bounds(last, zone)[1])


def chosen_day(raw: str | None, this_day: date) -> date:
    """The day asked for (YYYY-MM-DD); anything unreadable or out of range is `this_day`, and says so."""
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


def chosen_span(args: Any) -> Span:
    """?from=…&to=… (local days); each defaults to today, the span is at most a year and runs forwards."""
    today = present.today()
    last = chosen_day(args.get("to"), today)
    first = chosen_day(args.get("from"), last) if args.get("from") else last
    if first > last:
        flash(SPAN_BACKWARDS)
        first = last
    if (last - first).days >= LONGEST_SPAN_DAYS:
        flash(SPAN_TOO_LONG)
        first = last - timedelta(days=LONGEST_SPAN_DAYS - 1)
    return span_of(first, last)


# -- the queries ------------------------------------------------------------------------------------


def request_times(db: Db, span: Span, *where: sa.ColumnElement[bool]) -> list[metrics.RequestTimes]:
    """The requests made in the span (and matching `where`): their moments and rating, no ORM objects."""
    rework = REWORK.label("rework")
    created = col(ServiceRequest.created_at)
    query = sa.select(
        col(ServiceRequest.district),
        created,
        col(ServiceRequest.assigned_at),
        col(ServiceRequest.completed_at),
        col(ServiceRequest.rating),
        col(ServiceRequest.worker_id),
        rework,
    ).where(created >= span.start, created < span.end, *where)
    return [
        metrics.RequestTimes(district, made, assigned, completed, rating, worker, bool(reworked))
        for district, made, assigned, completed, rating, worker, reworked in db.execute(query)
    ]


def escalations(db: Db, span: Span, *where: sa.ColumnElement[bool]) -> dict[str, dict[int | None, int]]:
    """Per district and rung of the ladder they reached, the requests made in the span that were
    escalated at least once (by their audit events of escalation) or climbed above the first rung."""
    district, created = col(ServiceRequest.district), col(ServiceRequest.created_at)
    escalated = sa.exists().where(
        col(AuditEvent.entity) == "service_request",
        col(AuditEvent.entity_id) == col(ServiceRequest.id),
        col(AuditEvent.action) == AuditAction.REQUEST_ESCALATED.value,
    )
    query = (
        sa.select(district, ESCALATION_LEVEL, sa.func.count())
        .where(created >= span.start, created < span.end, sa.or_(escalated, ESCALATION_LEVEL > 1), *where)
        .group_by(district, ESCALATION_LEVEL)
    )
    found: dict[str, dict[int | None, int]] = {}
    for name, level, count in db.execute(query):
        found.setdefault(name, {})[level] = int(count)
    return found


def ranking(db: Db, span: Span) -> list[metrics.DistrictRank]:
    return metrics.district_ranking(request_times(db, span), escalations(db, span))


def _agency_workers(db: Db, agency_id: int) -> dict[int, str]:
    query = sa.select(col(Worker.id), col(Worker.name)).where(col(Worker.provider_id) == agency_id)
    return {int(worker_id): name for worker_id, name in db.execute(query) if worker_id is not None}


def _offers_refused(db: Db, span: Span, worker_ids: Sequence[int]) -> dict[tuple[int, str], int]:
    """Per worker, the offers made in the span they declined or let run out."""
    status, made = col(Offer.status), col(Offer.created_at)
    query = (
        sa.select(col(Offer.worker_id), status, sa.func.count())
        .where(
            col(Offer.worker_id).in_(worker_ids),
            status.in_((OfferStatus.DECLINED, OfferStatus.EXPIRED)),
            made >= span.start,
            made < span.end,
        )
        .group_by(col(Offer.worker_id), status)
    )
    return {(worker, OfferStatus(found).value): int(count) for worker, found, count in db.execute(query)}


def _dissatisfied(db: Db, span: Span, worker_ids: Sequence[int]) -> list[Any]:
    """The requests of the span its workers did whose citizens rated them 1 or 2: what to look into."""
    created = col(ServiceRequest.created_at)
    query = (
        sa.select(
            col(ServiceRequest.number),
            col(ServiceRequest.district),
            col(ServiceRequest.service_code),
            col(ServiceRequest.worker_id),
            col(ServiceRequest.rating),
            col(ServiceRequest.completed_at),
        )
        .where(
            col(ServiceRequest.worker_id).in_(worker_ids),
            col(ServiceRequest.rating) <= metrics.DISSATISFIED_AT_MOST,
            created >= span.start,
            created < span.end,
        )
        .order_by(created)
    )
    return list(db.execute(query))


@dataclass(frozen=True)
class WorkerLine:
    """One worker's line of the agency report."""

    worker_id: int
    name: str
    outcomes: metrics.Outcomes
    declined: int
    expired: int


@dataclass(frozen=True)
class AgencyReport:
    agency: Provider
    total: metrics.Outcomes
    declined: int
    expired: int
    workers: list[WorkerLine]
    dissatisfied: list[Any]  # number, district, service, worker id, rating, completed_at


def agency_report(db: Db, agency: Provider, span: Span) -> AgencyReport:
    """The jobs its workers took (requests made in the span), their offers refused, the unhappy citizens."""
    workers = _agency_workers(db, agency.id or 0)
    ids = sorted(workers)
    jobs = request_times(db, span, col(ServiceRequest.worker_id).in_(ids)) if ids else []
    refused = _offers_refused(db, span, ids) if ids else {}
    lines = [
        WorkerLine(
            worker_id,
            workers[worker_id],
            metrics.outcomes(r for r in jobs if r.worker_id == worker_id),
            refused.get((worker_id, OfferStatus.DECLINED.value), 0),
            refused.get((worker_id, OfferStatus.EXPIRED.value), 0),
        )
        for worker_id in ids
    ]
    lines.sort(key=lambda line: (-line.outcomes.requests, line.name, line.worker_id))
    return AgencyReport(
        agency,
        metrics.outcomes(jobs),
        sum(line.declined for line in lines),
        sum(line.expired for line in lines),
        lines,
        _dissatisfied(db, span, ids) if ids else [],
    )


# -- the columns, shared by the page and the CSV ----------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of the ranking: its label (gettext), its CSV header, and its value on screen and in CSV."""

    label: str
    header: str
    shown: Callable[[metrics.DistrictRank], str]
    sheet: Callable[[metrics.DistrictRank], object]


def _levels(line: metrics.DistrictRank) -> str:
    return " · ".join(f"L{level}: {count}" for level, count in line.by_level)


RANKING_COLUMNS: tuple[Column, ...] = (
    Column(N_("Requests"), "requests", lambda r: f"{r.outcomes.requests:,}", lambda r: r.outcomes.requests),
    Column(
        N_("Median time to assignment"),
        "median_minutes_to_assignment",
        lambda r: present.duration(r.outcomes.assignment_median_s),
        lambda r: metrics.minutes(r.outcomes.assignment_median_s),
    ),
    Column(
        N_("Median time to completion"),
        "median_minutes_to_completion",
        lambda r: present.duration(r.outcomes.completion_median_s),
        lambda r: metrics.minutes(r.outcomes.completion_median_s),
    ),
    Column(N_("Rated"), "rated", lambda r: f"{r.outcomes.rated:,}", lambda r: r.outcomes.rated),
    Column(
        N_("Dissatisfied (rated 1–2)"),
        "dissatisfaction_percent",
        lambda r: metrics.format_percent(r.outcomes.dissatisfaction_rate),
        lambda r: metrics.share(r.outcomes.dissatisfaction_rate),
    ),
    Column(
        N_("Escalated"),
        "escalated",
        lambda r: f"{r.escalated:,}" + (f" ({_levels(r)})" if r.by_level else ""),
        lambda r: r.escalated,
    ),
    Column(N_("Escalated by level"), "escalated_by_level", _levels, _levels),
    Column(
        N_("Rework"),
        "rework_percent",
        lambda r: metrics.format_percent(r.outcomes.rework_rate),
        lambda r: metrics.share(r.outcomes.rework_rate),
    ),
)


# -- the pages --------------------------------------------------------------------------------------


@bp.get("/districts")
@requires(*MANAGERS)
def districts() -> ResponseReturnValue:
    span = chosen_span(request.args)
    with runtime().engine.connect() as db:
        lines = ranking(db, span)
    return render_template(
        "console/reports/districts.html",
        span=span,
        lines=lines,
        columns=RANKING_COLUMNS,
        csv_url=url_for(".districts_csv", **span.args()),
    )


@bp.get("/districts.csv")
@requires(*MANAGERS)
def districts_csv() -> ResponseReturnValue:
    span = chosen_span(request.args)
    with runtime().engine.connect() as db:
        lines = ranking(db, span)
    header = ["rank", "district", "district_hi", *(c.header for c in RANKING_COLUMNS)]
    rows = [
        [
            line.rank,
            line.district,
            pincodes.display_name(line.district, "hi"),
            *(c.sheet(line) for c in RANKING_COLUMNS),
        ]
        for line in lines
    ]
    return spreadsheet.response(f"district-ranking-{span.name()}.csv", header, rows, present.zone())


@bp.get("/agency")
@requires(*MANAGERS, Role.PROVIDER)
def own_agency() -> ResponseReturnValue:
    """A provider user's own agency's report; staff choose an agency from the list of agencies."""
    if g.user.role is not Role.PROVIDER:
        return redirect(url_for("console.providers.index"))
    dates: dict[str, Any] = {key: request.args[key] for key in ("from", "to") if key in request.args}
    return redirect(url_for(".agency", provider_id=g.user.provider_id or 0, **dates))


@bp.get("/agencies/<id:provider_id>")
@requires(*MANAGERS, Role.PROVIDER)
def agency(provider_id: int) -> ResponseReturnValue:
    span = chosen_span(request.args)
    with Session(runtime().engine) as db:
        report = agency_report(db, _agency_for(db, provider_id), span)
    return render_template(
        "console/reports/agency.html",
        span=span,
        report=report,
        metrics=metrics,
        csv_url=url_for(".agency_csv", provider_id=provider_id, **span.args()),
    )


AGENCY_HEADER = (
    "worker_id",
    "worker",
    "jobs",
    "assigned",
    "median_minutes_to_assignment",
    "completed",
    "median_minutes_to_completion",
    "rated",
    "average_rating",
    "dissatisfied",
    "offers_declined",
    "offers_timed_out",
)


@bp.get("/agencies/<id:provider_id>.csv")
@requires(*MANAGERS, Role.PROVIDER)
def agency_csv(provider_id: int) -> ResponseReturnValue:
    span = chosen_span(request.args)
    with Session(runtime().engine) as db:
        report = agency_report(db, _agency_for(db, provider_id), span)
    rows = [
        _agency_row(line.worker_id, line.name, line.outcomes, line.declined, line.expired) for line in report.workers
    ]
    rows.append(_agency_row("", report.agency.name, report.total, report.declined, report.expired))
    return spreadsheet.response(f"agency-{provider_id}-{span.name()}.csv", AGENCY_HEADER, rows, present.zone())


def _agency_row(worker_id: object, name: str, o: metrics.Outcomes, declined: int, expired: int) -> list[object]:
    average = "" if o.average_rating is None else f"{o.average_rating:.2f}"
    return [
        worker_id,
        name,
        o.requests,
        o.assigned,
        metrics.minutes(o.assignment_median_s),
        o.completed,
        metrics.minutes(o.completion_median_s),
        o.rated,
        average,
        o.dissatisfied,
        declined,
        expired,
    ]


def _agency_for(db: Session, provider_id: int) -> Provider:
    """The agency, if this user may see its report: a provider user only its own (else 403, audited)."""
    if g.user.role is Role.PROVIDER and g.user.provider_id != provider_id:
        auth.audit_refusal(AuditAction.ACCESS_REFUSED)
        abort(403)
    found = db.get(Provider, provider_id)
    if found is None:
        abort(404)
    return found
