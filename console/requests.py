"""Requests: the list with filters and search, the detail page with the full timeline, the
actions agents take on one request, and the CSV export for supervisors."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import auth, history, recordings
from console.auth import MANAGERS, STAFF, requires, runtime
from console.callers import promise_callback
from console.forms import NOTE_MAX, parse_id, plain
from console.labels import N_
from console.present import day_range, local_moment
from core import numbers, phones
from core.geo import distance_km
from dispatch import jobs, lifecycle
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallbackRequest,
    Caller,
    CallLog,
    Offer,
    RequestStatus,
    Role,
    ServiceRequest,
    SmsLog,
    User,
    VerificationStatus,
    Worker,
    WorkerSkill,
)

log = logging.getLogger(__name__)
bp = Blueprint("requests", __name__, url_prefix="/requests")
PAGE = 50
EXPORT_MAX = 100_000
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"^\+\d{8,15}$")
CANDIDATES_SHOWN = 12
EXPORT_COLUMNS = (
    "number",
    "created_at",
    "status",
    "service",
    "district",
    "pincode",
    "channel",
    "caller_phone",
    "worker_id",
    "assigned_at",
    "completed_at",
    "rating",
    "address_note",
    "preferred_time",
)


@dataclass(frozen=True)
class Filters:
    """The list's filters, from the query string; anything malformed is ignored, never an error."""

    status: str = ""
    service: str = ""
    district: str = ""
    start: date | None = None
    end: date | None = None
    sla: bool = False
    q: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: Any) -> Filters:
        status = args.get("status", "")
        service = args.get("service", "")
        return cls(
            status=status if status in {s.value for s in RequestStatus} else "",
            service=service if service in runtime().settings.service_codes else "",
            district=plain(args.get("district", ""), 80).upper(),
            start=_day(args.get("from")),
            end=_day(args.get("to")),
            sla=args.get("sla") == "breached",
            q=plain(args.get("q", ""), 20),
            page=min(parse_id(args.get("page")) or 1, 10_000),
        )

    def query_args(self, **changes: Any) -> dict[str, Any]:
        values = {
            "status": self.status,
            "service": self.service,
            "district": self.district,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "sla": "breached" if self.sla else "",
            "q": self.q,
            "page": self.page,
        }
        values.update(changes)
        return {
            key: value for key, value in values.items() if value not in ("", None, 1) or (key == "page" and value != 1)
        }


def _day(raw: str | None) -> date | None:
    """A date in the form's YYYY-MM-DD, within the years a helpline can have records of."""
    try:
        day = date.fromisoformat(raw or "")
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def _filtered(filters: Filters) -> sa.Select[Any]:
    """The requests these filters select, newest first, within what the user may see."""
    query = select(ServiceRequest).order_by(col(ServiceRequest.created_at).desc(), col(ServiceRequest.id).desc())
    if g.user.role is Role.PROVIDER:  # an agency sees the jobs of its own workers only
        query = query.join(Worker, col(Worker.id) == ServiceRequest.worker_id).where(
            Worker.provider_id == g.user.provider_id
        )
    if filters.status:
        query = query.where(ServiceRequest.status == RequestStatus(filters.status))
    if filters.service:
        query = query.where(ServiceRequest.service_code == filters.service)
    if filters.district:
        query = query.where(ServiceRequest.district == filters.district)
    if filters.start:
        query = query.where(col(ServiceRequest.created_at) >= day_range(filters.start)[0])
    if filters.end:
        query = query.where(col(ServiceRequest.created_at) < day_range(filters.end)[1])
    if filters.sla:
        query = query.where(_breached())
    if filters.q:
        query = query.where(_matching(filters.q))
    return query


def _breached() -> sa.ColumnElement[bool]:
    """Assigned later than the SLA allows, or still waiting for a worker past it."""
    limit = timedelta(minutes=runtime().settings.console.assignment_sla_minutes)
    late_unassigned = sa.and_(
        col(ServiceRequest.status).in_(lifecycle.UNASSIGNED),
        col(ServiceRequest.created_at) < runtime().clock.now() - limit,
    )
    if runtime().engine.dialect.name == "postgresql":
        late_assigned = col(ServiceRequest.assigned_at) - col(ServiceRequest.created_at) > limit
    else:  # SQLite keeps datetimes as text: compare in days
        late_assigned = (
            sa.func.julianday(ServiceRequest.assigned_at) - sa.func.julianday(ServiceRequest.created_at)
            > limit.total_seconds() / 86400
        )
    return sa.or_(late_unassigned, sa.and_(col(ServiceRequest.assigned_at).is_not(None), late_assigned))


def _matching(q: str) -> sa.ColumnElement[bool]:
    """A request number, or the caller's phone number (in any way people write it)."""
    if numbers.is_valid(q):
        return col(ServiceRequest.number) == q
    phone = phones.to_e164(q)
    if phone is None:
        return sa.false()
    callers = select(Caller.id).where(Caller.phone == phone)
    return col(ServiceRequest.caller_id).in_(callers)


@bp.get("")
@requires(*STAFF, Role.PROVIDER)
def index() -> ResponseReturnValue:
    filters = Filters.parse(request.args)
    with Session(runtime().engine) as db:
        query = _filtered(filters)
        total = db.execute(select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
        found = db.exec(query.offset((filters.page - 1) * PAGE).limit(PAGE)).all()  # type: ignore[call-overload]
        phones_of = _caller_phones(db, [r.caller_id for r in found if r.caller_id])
        seen = _filtered(Filters()).with_only_columns(col(ServiceRequest.district)).distinct().order_by(None)
        districts = sorted(db.execute(seen).scalars())  # a provider's list: the districts of its jobs
    return render_template(
        "console/requests.html",
        requests=found,
        filters=filters,
        total=total,
        page=PAGE,
        phones_of=phones_of,
        districts=districts,
        statuses=list(RequestStatus),
        services=runtime().settings.services,
    )


def _caller_phones(db: Session, caller_ids: list[int]) -> dict[int, str]:
    if not caller_ids:
        return {}
    return {c.id: c.phone for c in db.exec(select(Caller).where(col(Caller.id).in_(caller_ids))).all() if c.id}


@bp.get("/export.csv")
@requires(*MANAGERS)
def export() -> ResponseReturnValue:
    """The filtered requests as CSV, for a spreadsheet; cells that look like formulas are defused."""
    filters = Filters.parse(request.args)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    with Session(runtime().engine) as db:
        found = db.exec(_filtered(filters).limit(EXPORT_MAX)).all()  # type: ignore[call-overload]
        phones_of = _caller_phones(db, [r.caller_id for r in found if r.caller_id])
        for r in found:
            writer.writerow([_cell(v) for v in _export_row(r, phones_of.get(r.caller_id or 0, ""))])
        auth.audit(
            db, AuditAction.REQUESTS_EXPORTED, "service_request", None, rows=len(found), filters=filters.query_args()
        )
        db.commit()
    name = f"requests-{runtime().clock.now():%Y%m%d-%H%M}.csv"
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}"}
    )


def _export_row(r: ServiceRequest, caller_phone: str) -> tuple[object, ...]:
    def moment(value: datetime | None) -> str:
        return value.isoformat() if value else ""

    return (
        r.number,
        moment(r.created_at),
        r.status.value,
        r.service_code,
        r.district,
        r.pincode,
        r.channel.value,
        caller_phone,
        r.worker_id or "",
        moment(r.assigned_at),
        moment(r.completed_at),
        r.rating or "",
        r.address_note or "",
        r.preferred_time or "",
    )


def _cell(value: object) -> str:
    """A spreadsheet runs a cell that starts like a formula; a plain phone number stays as it is."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) and not E164.match(text) else text


# -- one request ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """One line of a request's timeline."""

    at: datetime
    kind: str
    text: str
    status: str = ""


def _request(db: Session, number: str) -> ServiceRequest:
    """The request, if this user may see it: a provider only its own workers' jobs."""
    if not numbers.is_valid(number):
        abort(404)
    found = db.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
    if found is None:
        abort(404)
    if g.user.role is Role.PROVIDER:
        worker = db.get(Worker, found.worker_id) if found.worker_id else None
        if worker is None or worker.provider_id != g.user.provider_id:
            auth.audit_refusal(AuditAction.ACCESS_REFUSED)
            abort(403)
    return found


@bp.get("/<number>")
@requires(*STAFF, Role.PROVIDER)
def show(number: str) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        found = _request(db, number)
        caller = db.get(Caller, found.caller_id) if found.caller_id else None
        worker = db.get(Worker, found.worker_id) if found.worker_id else None
        agency = g.user.provider_id if g.user.role is Role.PROVIDER else None
        offers = db.exec(
            select(Offer, Worker)
            .join(Worker, col(Worker.id) == Offer.worker_id)
            .where(Offer.request_id == found.id, _of_agency(agency))
            .order_by(col(Offer.id))
        ).all()
        timeline = _timeline(db, found, agency)
        candidates = _candidates(db, found) if g.user.role in STAFF else []
        spoken = recordings.spoken_address(db, found.id) if recordings.may_hear(db, found) else None
    return render_template(
        "console/request.html",
        r=found,
        caller=caller,
        worker=worker,
        offers=offers,
        timeline=timeline,
        candidates=candidates,
        can_act=g.user.role in STAFF,
        spoken=spoken,
    )


def _of_agency(agency: int | None) -> sa.ColumnElement[bool]:
    """Every worker for the helpline's staff; an agency's own workers for a provider user."""
    return sa.true() if agency is None else col(Worker.provider_id) == agency


def _timeline(db: Session, found: ServiceRequest, agency: int | None) -> list[Moment]:
    """Everything that happened to the request, oldest first: audit events, SMS, calls, callbacks.

    An agency sees only what concerns its own workers, and no message texts (they carry the
    citizen's number and address); nobody sees the completion code, the citizen's proof of a visit."""
    events = db.exec(
        select(AuditEvent).where(AuditEvent.entity == "service_request", AuditEvent.entity_id == found.id)
    ).all()
    sms = db.exec(select(SmsLog).where(SmsLog.request_id == found.id)).all()
    calls = db.exec(select(CallLog).where(CallLog.request_id == found.id)).all()
    callbacks = db.exec(select(CallbackRequest).where(CallbackRequest.request_id == found.id)).all()
    if agency is not None:
        own = set(db.exec(select(Worker.id).where(Worker.provider_id == agency)).all())
        events = [e for e in events if _worker_of(e) in own | {None}]
        sms = [m for m in sms if m.worker_id in own]
        calls, callbacks = [], []
    names = _user_names(db, events) if agency is None else {}
    moments = [Moment(e.at, "event", history.request_event(e, names), e.to_status or "") for e in events]
    moments += [Moment(m.created_at, "sms", _sms_line(m, found, agency is None), m.status or "") for m in sms]
    moments += [Moment(c.started_at, "call", history.call(c), c.status or "") for c in calls]
    moments += [Moment(c.created_at, "callback", history.callback(c.reason, c.note), c.status.value) for c in callbacks]
    return sorted(moments, key=lambda m: m.at)


def _user_names(db: Session, events: list[AuditEvent] | Any) -> dict[str, str]:
    """'user:7' → 'asha': console users by name on the timeline."""
    ids = {int(e.actor[5:]) for e in events if e.actor.startswith("user:") and e.actor[5:].isdigit()}
    if not ids:
        return {}
    return {f"user:{u.id}": u.username for u in db.exec(select(User).where(col(User.id).in_(ids))).all()}


def _worker_of(event: AuditEvent) -> int | None:
    worker = event.detail.get("worker_id") if isinstance(event.detail, dict) else None
    return worker if isinstance(worker, int) else None


def _sms_line(sms: SmsLog, found: ServiceRequest, with_text: bool) -> str:
    """One SMS on the timeline: to whom (masked) and which message; its text for the helpline's staff."""
    line = history.sms(sms)
    if not with_text:
        return line
    body = sms.body
    if found.completion_code:
        body = re.sub(rf"(?<!\d){re.escape(found.completion_code)}(?!\d)", "••••", body)
    return f"{line}: {body}"


def _candidates(db: Session, found: ServiceRequest) -> list[tuple[Worker, float]]:
    """Workers an agent may give this job to: verified, active, skilled; nearest first."""
    if found.status not in lifecycle.ASSIGNABLE or found.latitude is None or found.longitude is None:
        return []
    skilled = sa.exists().where(
        col(WorkerSkill.worker_id) == col(Worker.id), col(WorkerSkill.service_code) == found.service_code
    )
    near = db.exec(
        select(Worker)
        .where(
            Worker.district == found.district,
            col(Worker.active).is_(True),
            Worker.police_verification == VerificationStatus.VERIFIED,
            skilled,
        )
        .limit(500)
    ).all()
    ranked = sorted(
        ((w, distance_km(found.latitude, found.longitude, w.latitude, w.longitude)) for w in near),
        key=lambda pair: pair[1],
    )
    return ranked[:CANDIDATES_SHOWN]


# -- what an agent does to a request -------------------------------------------------------------------


@bp.post("/<number>/cancel")
@requires(*STAFF)
def cancel(number: str) -> ResponseReturnValue:
    reason = plain(request.form.get("reason", ""), NOTE_MAX)
    if not reason:
        flash("Say why the request is cancelled.")
        return redirect(url_for(".show", number=number))
    return _move(
        number,
        lambda db, r: lifecycle.cancel(db, r.id or 0, auth.actor(), reason, runtime().clock.now()),
        N_("Cancelled."),
    )


@bp.post("/<number>/redispatch")
@requires(*STAFF)
def redispatch(number: str) -> ResponseReturnValue:
    reason = plain(request.form.get("reason", ""), NOTE_MAX) or "dispatched again from the console"
    return _move(
        number,
        lambda db, r: lifecycle.redispatch(db, r.id or 0, auth.actor(), reason, runtime().clock.now()),
        N_("Dispatching again."),
        then=jobs.dispatch_request,
    )


@bp.post("/<number>/assign")
@requires(*STAFF)
def assign(number: str) -> ResponseReturnValue:
    worker_id = parse_id(request.form.get("worker"))
    if worker_id is None:
        flash("Choose a worker.")
        return redirect(url_for(".show", number=number))
    return _move(
        number,
        lambda db, r: lifecycle.assign(
            db,
            r.id or 0,
            worker_id,
            auth.actor(),
            runtime().clock.now(),
            allow_parallel_jobs=runtime().settings.dispatch.allow_parallel_jobs,
        ),
        N_("Assigned."),
        then=jobs.notify_assigned,
    )


Move = Callable[[Session, ServiceRequest], lifecycle.Moved]


def _move(number: str, move: Move, done: str, then: lifecycle.FollowUp | None = None) -> ResponseReturnValue:
    """Make one lifecycle move; after the commit, queue what it calls for."""
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        moved = move(db, found)
    if not moved.ok:
        if moved.error:
            flash(moved.error)
        return redirect(url_for(".show", number=number))
    lifecycle.queue_after(runtime().redis, found.id or 0, moved, then)
    flash(done)
    return redirect(url_for(".show", number=number))


@bp.post("/<number>/note")
@requires(*STAFF)
def note(number: str) -> ResponseReturnValue:
    text = plain(request.form.get("note", ""), NOTE_MAX)
    if not text:
        flash("The note is empty.")
        return redirect(url_for(".show", number=number))
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        auth.audit(db, AuditAction.REQUEST_NOTE, "service_request", found.id, reason=text, to_status=found.status.value)
    return redirect(url_for(".show", number=number))


@bp.post("/<number>/callback")
@requires(*STAFF)
def callback(number: str) -> ResponseReturnValue:
    """Promise the citizen a call back about this request."""
    due = local_moment(request.form.get("due", ""))
    text = plain(request.form.get("note", ""), NOTE_MAX) or None
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        caller = db.get(Caller, found.caller_id) if found.caller_id else None
        if caller is None or due is None:
            flash("A callback needs the caller's number and a time from now to 30 days ahead.")
            return redirect(url_for(".show", number=number))
        promise_callback(db, caller, due, text, found.language, request_id=found.id)
    flash("Callback scheduled.")
    return redirect(url_for(".show", number=number))
