"""Requests: the list with filters and search, the detail page with the full timeline, the
actions agents take on one request, and the CSV export for supervisors."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import auth, escalations, history, labels, present, recordings, scope, spreadsheet
from console.auth import MANAGERS, OFFICERS, STAFF, requires, runtime
from console.callers import promise_callback
from console.forms import NOTE_MAX, parse_id, plain
from console.labels import N_
from console.present import day_range, local_moment
from core import numbers, phones, slots
from core.geo import distance_km
from dispatch import changes, enqueue, jobs, lifecycle, rework, visit
from dispatch import reach as dispatch_reach
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallbackRequest,
    Caller,
    CallLog,
    Offer,
    Provider,
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
    handed: bool = False  # handed to an agency (an agency's own: to it)
    late: bool = False  # visits not started by their slot's end (dispatch/visit.py), still waiting to start
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
            handed=args.get("handed") == "agency",
            late=args.get("late") == "visit",
            q=plain(args.get("q", ""), 20),
            page=min(parse_id(args.get("page")) or 1, 10_000),
        )

    @property
    def overdue_first(self) -> bool:
        """The lists of requests past their time: the longest overdue first, with how long."""
        return self.sla or self.status == RequestStatus.ESCALATED.value

    def query_args(self, **changes: Any) -> dict[str, Any]:
        values = {
            "status": self.status,
            "service": self.service,
            "district": self.district,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "sla": "breached" if self.sla else "",
            "handed": "agency" if self.handed else "",
            "late": "visit" if self.late else "",
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
    """The requests these filters select, within what the user may see: newest first, but the
    escalated and SLA-breached lists oldest first (the longest overdue at the top)."""
    query = select(ServiceRequest).order_by(*_order(filters)).where(scope.visible())
    if filters.status:
        query = query.where(ServiceRequest.status == RequestStatus(filters.status))
    if filters.service:
        query = query.where(ServiceRequest.service_code == filters.service)
    if filters.district:
        query = query.where(ServiceRequest.district == filters.district)
    query = query.where(*_days(filters))
    if filters.sla:
        query = query.where(_breached())
    if filters.handed:
        handed = col(ServiceRequest.handed_to_provider_id)
        query = query.where(handed == g.user.provider_id if g.user.role is Role.PROVIDER else handed.is_not(None))
    if filters.late:
        query = query.where(
            col(ServiceRequest.late_flagged_at).is_not(None),
            col(ServiceRequest.started_at).is_(None),
            ServiceRequest.status == RequestStatus.ASSIGNED,
        )
    if filters.q:
        query = query.where(_matching(filters.q))
    return query


def _days(filters: Filters) -> list[sa.ColumnElement[bool]]:
    """Filed from the `start` day, up to the `end` day, as far as each is given."""
    days = []
    if filters.start:
        days.append(col(ServiceRequest.created_at) >= day_range(filters.start)[0])
    if filters.end:
        days.append(col(ServiceRequest.created_at) < day_range(filters.end)[1])
    return days


def _order(filters: Filters) -> tuple[sa.ColumnElement[Any], ...]:
    if filters.overdue_first:
        return col(ServiceRequest.created_at).asc(), col(ServiceRequest.id).asc()
    return col(ServiceRequest.created_at).desc(), col(ServiceRequest.id).desc()


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
@requires(*STAFF, Role.PROVIDER, *OFFICERS)
def index() -> ResponseReturnValue:
    filters = Filters.parse(request.args)
    with Session(runtime().engine) as db:
        if numbers.is_valid(filters.q) and db.exec(_filtered(Filters(q=filters.q)).limit(1)).first():  # type: ignore[call-overload]
            return redirect(url_for(".show", number=filters.q))  # a request number, as read out: open it
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
    zone = present.zone()
    with Session(runtime().engine) as db:
        found = db.exec(_filtered(filters).limit(EXPORT_MAX)).all()  # type: ignore[call-overload]
        phones_of = _caller_phones(db, [r.caller_id for r in found if r.caller_id])
        sheet = [_export_row(r, phones_of.get(r.caller_id or 0, "")) for r in found]
        auth.audit(
            db, AuditAction.REQUESTS_EXPORTED, "service_request", None, rows=len(found), filters=filters.query_args()
        )
        db.commit()
    header = [spreadsheet.timed(c, zone) if c.endswith("_at") else c for c in EXPORT_COLUMNS]
    return spreadsheet.response(
        f"requests-{runtime().clock.now().astimezone(zone):%Y%m%d-%H%M}.csv", header, sheet, zone
    )


def _export_row(r: ServiceRequest, caller_phone: str) -> tuple[object, ...]:
    return (
        r.number,
        r.created_at,
        r.status.value,
        r.service_code,
        r.district,
        r.pincode,
        r.channel.value,
        caller_phone,
        r.worker_id or "",
        r.assigned_at,
        r.completed_at,
        r.rating or "",
        r.address_note or "",
        r.preferred_time or "",
    )


# -- one request ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """One line of a request's timeline."""

    at: datetime
    kind: str
    text: str
    status: str = ""


_request = scope.request_in_scope  # the request, if this user may see it: else 404, or 403 (audited)
_handed_to_me = scope.handed_to_me


@bp.get("/<number>")
@requires(*STAFF, Role.PROVIDER, *OFFICERS)
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
        workbench = (
            _workbench(db, found, request.args.get("radius")) if g.user.role in STAFF or _handed_to_me(found) else {}
        )
        spoken = recordings.spoken_address(db, found.id) if recordings.may_hear(db, found) else None
        rework_of, reworked_by = rework.linked(db, found)
        ladder_panel = escalations.panel(db, found) if g.user.role is not Role.PROVIDER else {}
    return render_template(
        "console/request.html",
        r=found,
        caller=caller,
        worker=worker,
        offers=offers,
        timeline=timeline,
        can_act=g.user.role in STAFF,
        spoken=spoken,
        rework_of=rework_of,
        reworked_by=reworked_by,
        finished=found.completed_at is not None and found.status in rework.FINISHED,
        ladder=ladder_panel,
        **workbench,
        **_changes(found),
    )


def _changes(found: ServiceRequest) -> dict[str, object]:
    """The visit's slot in words, and what a cancel or a move may choose from, in the console's language."""
    settings, now, language = runtime().settings, runtime().clock.now(), labels.language()
    visit = None
    if found.slot_starts_at is not None and found.slot_ends_at is not None:
        visit = slots.describe(settings, found.slot_starts_at, found.slot_ends_at, language, now)
    open_now = slots.upcoming(settings, now)
    return {
        "visit": visit,
        # the open slot it is booked for: chosen in the move's select
        "booked_slot": next((slot.key for slot in open_now if slot.starts_at == found.slot_starts_at), None),
        "open_slots": [
            (slot.key, slots.describe(settings, slot.starts_at, slot.ends_at, language, now)) for slot in open_now
        ],
        "reasons": [(reason.key, reason.name(language)) for reason in settings.changes.reasons],
    }


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
    if sms.template in CODE_TEMPLATES:  # a code reset since is no longer the request's: masked all the same
        body = re.sub(r"(?<!\d)\d{4}(?!\d)", "••••", body)
    return f"{line}: {body}"


# The texts that carry one of the citizen's codes: nobody on the console reads a code in them.
CODE_TEMPLATES = frozenset({"assigned_citizen", "on_the_way_citizen", "start_code_citizen", "completion_code_citizen"})


# -- the escalation workbench: dispatch again (how far), hand to an agency, assign ---------------------


def _workbench(db: Session, found: ServiceRequest, raw_radius: str | None) -> dict[str, object]:
    """What the agent may do with a request waiting for a worker, and what each would do: who a new
    round within the chosen radius would ask (or why nobody), the workers they may assign (any
    district, nearest first; an agency its own), and the agencies serving the district."""
    if found.status not in lifecycle.ASSIGNABLE:
        return {}
    rules = runtime().settings.dispatch
    if g.user.role is Role.PROVIDER:
        return {"candidates": _candidates(db, found, rules.max_radius_km, agency=g.user.provider_id)}
    reach_km = _radius(raw_radius)
    reach = dispatch_reach.new_round(db, found, reach_km, rules, runtime().clock.now())
    return {
        "candidates": _candidates(db, found, max(reach.radius_km, rules.default_radius_km)),
        "reach": reach,
        "radii": _radii(rules.default_radius_km, rules.max_radius_km),
        "agencies": _agencies(db, found),
    }


RADII_KM = (5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200)


def _radii(default_km: float, max_km: float) -> list[float]:
    """The radii an agent may choose for a round: the default, wider ones, up to the configured maximum."""
    return sorted({default_km, max_km, *(float(km) for km in RADII_KM if default_km < km <= max_km)})


def _radius(raw: str | None) -> float | None:
    """The radius an agent chose for a round, if wider than the default and no wider than allowed;
    None for the default (each worker's own radius)."""
    rules = runtime().settings.dispatch
    try:
        km = float(raw or "")
    except ValueError:
        return None
    if not math.isfinite(km) or km <= rules.default_radius_km:
        return None
    return min(km, rules.max_radius_km)


def _agencies(db: Session, found: ServiceRequest) -> list[Provider]:
    """Active agencies that serve the request's district: based there, or with workers there."""
    workers_there = sa.exists().where(
        col(Worker.provider_id) == col(Provider.id),
        col(Worker.district) == found.district,
        col(Worker.active).is_(True),
    )
    query = select(Provider).where(
        col(Provider.active).is_(True), sa.or_(col(Provider.district) == found.district, workers_there)
    )
    return list(db.exec(query.order_by(col(Provider.name)).limit(50)).all())


def _candidates(
    db: Session, found: ServiceRequest, radius_km: float, agency: int | None = None
) -> list[tuple[Worker, float, str]]:
    """Workers who may be given this job: verified, active, skilled; in the request's district or
    within `radius_km` of it, whatever their district (an agency: its own workers, anywhere);
    nearest first, each with how their offer for it went, if they had one."""
    if found.latitude is None or found.longitude is None:
        return []
    skilled = sa.exists().where(
        col(WorkerSkill.worker_id) == col(Worker.id), col(WorkerSkill.service_code) == found.service_code
    )
    dlat = radius_km / dispatch_reach.KM_PER_DEGREE
    dlon = radius_km / (dispatch_reach.KM_PER_DEGREE * max(math.cos(math.radians(found.latitude)), 0.01))
    near = sa.and_(
        col(Worker.latitude).between(found.latitude - dlat, found.latitude + dlat),
        col(Worker.longitude).between(found.longitude - dlon, found.longitude + dlon),
    )
    where = (
        col(Worker.provider_id) == agency
        if agency is not None
        else sa.or_(col(Worker.district) == found.district, near)
    )
    found_workers = db.exec(
        select(Worker)
        .where(where, col(Worker.active).is_(True), Worker.police_verification == VerificationStatus.VERIFIED, skilled)
        .limit(500)
    ).all()
    answered = {o.worker_id: o.status.value for o in db.exec(select(Offer).where(Offer.request_id == found.id)).all()}
    ranked = sorted(
        (
            (w, distance_km(found.latitude, found.longitude, w.latitude, w.longitude), answered.get(w.id or 0, ""))
            for w in found_workers
        ),
        key=lambda row: row[1],
    )
    return ranked[:CANDIDATES_SHOWN]


# -- what an agent does to a request -------------------------------------------------------------------


@bp.post("/<number>/cancel")
@requires(*STAFF)
def cancel(number: str) -> ResponseReturnValue:
    """Cancel with one of the citizen's reasons (`changes.reasons`), the agent's words, or both; the
    workers offered it or doing it are told. The agent decides: the citizen's policy does not hold them."""
    reason = runtime().settings.changes.reason(request.form.get("reason_key"))
    note = plain(request.form.get("reason", ""), NOTE_MAX)
    if reason is None and not note:
        flash("Say why the request is cancelled.")
        return redirect(url_for(".show", number=number))
    why = changes.Why(reason, note)
    return _change(
        number,
        lambda db, r: changes.cancel(db, r.id or 0, why, auth.actor(), runtime().clock.now(), via="console"),
        N_("Cancelled."),
    )


@bp.post("/<number>/reschedule")
@requires(*STAFF)
def reschedule(number: str) -> ResponseReturnValue:
    """Move the visit to another open slot (or give one to a request booked as soon as possible); a
    worker who has the job keeps it and is told the new time."""
    settings, now = runtime().settings, runtime().clock.now()
    slot = slots.find(settings, request.form.get("slot", ""), now)
    if slot is None:
        flash("Choose one of the open slots.")
        return redirect(url_for(".show", number=number))
    return _change(
        number,
        lambda db, r: changes.reschedule(db, settings, r.id or 0, slot, auth.actor(), now, via="console"),
        N_("Moved to the new slot."),
    )


Change = Callable[[Session, ServiceRequest], changes.Changed]


def _change(number: str, change: Change, done: str) -> ResponseReturnValue:
    """A cancel or a move; after the commit, the workers it concerns are told."""
    with session_scope(runtime().engine) as db:
        changed = change(db, _request(db, number))
    if not changed.ok:
        flash(changed.error or "")
        return redirect(url_for(".show", number=number))
    changes.tell(runtime().redis, changed)
    flash(done)
    return redirect(url_for(".show", number=number))


@bp.post("/<number>/redispatch")
@requires(*STAFF)
def redispatch(number: str) -> ResponseReturnValue:
    """A new round of offers, as far as the agent chose; not started when it would reach nobody (the
    request would only escalate again the same second): the agent is told why, and what else to do."""
    reason = plain(request.form.get("reason", ""), NOTE_MAX) or "dispatched again from the console"
    reach_km = _radius(request.form.get("radius"))
    rules = runtime().settings.dispatch

    def again(db: Session, found: ServiceRequest) -> lifecycle.Moved:
        if found.status in lifecycle.REDISPATCHABLE and not dispatch_reach.new_round(db, found, reach_km, rules).anyone:
            return lifecycle.Moved(NOBODY_IN_REACH)
        return lifecycle.redispatch(db, found.id or 0, auth.actor(), reason, runtime().clock.now(), reach_km)

    return _move(
        number,
        again,
        N_("Dispatching again."),
        then=jobs.dispatch_request,
        back={"radius": f"{reach_km:g}"} if reach_km else {},
    )


NOBODY_IN_REACH = N_(
    "Nobody to offer it to within this radius: widen it, hand the request to an agency, or assign a worker."
)


@bp.post("/<number>/hand")
@requires(*STAFF)
def hand(number: str) -> ResponseReturnValue:
    """Hand the request to an agency serving its district, which gives it to one of its own workers."""
    provider_id = parse_id(request.form.get("provider"))
    reason = plain(request.form.get("reason", ""), NOTE_MAX) or "handed to an agency from the console"
    if provider_id is None:
        flash("Choose an agency.")
        return redirect(url_for(".show", number=number))

    def handed(db: Session, found: ServiceRequest) -> lifecycle.Moved:
        if provider_id not in {p.id for p in _agencies(db, found)}:
            return lifecycle.Moved(N_("That agency does not serve the request's district."))
        return lifecycle.hand_to_agency(db, found.id or 0, provider_id, auth.actor(), reason, runtime().clock.now())

    return _move(number, handed, N_("Handed to the agency."))


@bp.post("/<number>/assign")
@requires(*STAFF, Role.PROVIDER)
def assign(number: str) -> ResponseReturnValue:
    """An agent gives the job to a worker they chose; an agency, a job handed to it, to one of its own."""
    worker_id = parse_id(request.form.get("worker"))
    if worker_id is None:
        flash("Choose a worker.")
        return redirect(url_for(".show", number=number))

    def assigned(db: Session, found: ServiceRequest) -> lifecycle.Moved:
        if g.user.role is Role.PROVIDER:
            worker = db.get(Worker, worker_id)
            if not _handed_to_me(found) or worker is None or worker.provider_id != g.user.provider_id:
                auth.audit_refusal(AuditAction.ACCESS_REFUSED)
                abort(403)
        return lifecycle.assign(
            db,
            found.id or 0,
            worker_id,
            auth.actor(),
            runtime().clock.now(),
            allow_parallel_jobs=runtime().settings.dispatch.allow_parallel_jobs,
            by="agency" if g.user.role is Role.PROVIDER else "agent",
            police_valid_days=runtime().settings.workers_quality.police_verification_valid_days,
        )

    return _move(number, assigned, N_("Assigned."), then=jobs.notify_assigned)


Move = Callable[[Session, ServiceRequest], lifecycle.Moved]


def _move(
    number: str,
    move: Move,
    done: str,
    then: lifecycle.FollowUp | None = None,
    back: dict[str, Any] | None = None,
) -> ResponseReturnValue:
    """Make one lifecycle move; after the commit, queue what it calls for."""
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        moved = move(db, found)
    if not moved.ok:
        if moved.error:
            flash(moved.error)
        return redirect(url_for(".show", number=number, **(back or {})))
    lifecycle.queue_after(runtime().redis, found.id or 0, then)
    flash(done)
    return redirect(url_for(".show", number=number))


@bp.post("/<number>/rework")
@requires(*STAFF)
def book_rework(number: str) -> ResponseReturnValue:
    """An agent records a problem the citizen reported with a finished job: its rework visit is booked."""
    other = request.form.get("other_worker") == "yes"
    settings, now = runtime().settings, runtime().clock.now()
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        booked = rework.problem_reported(
            db, found.id or 0, settings.rework, settings.workers_quality, auth.actor(), now, other_worker=other
        )
    if booked.new and booked.rework_id is not None:
        enqueue.dispatch_request(runtime().redis, booked.rework_id)
        flash(f"Rework visit {booked.number} booked.")
        return redirect(url_for(".show", number=booked.number))
    flash(booked.error or ("Sent to an agent." if booked.escalated else "Nothing changed."))
    return redirect(url_for(".show", number=number))


@bp.post("/<number>/rework/other")
@requires(*STAFF)
def rework_other_worker(number: str) -> ResponseReturnValue:
    """The citizen wants another worker for the rework visit than the one who did the job."""
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        refused = rework.another_worker(
            db, found.id or 0, auth.actor(), "the citizen asked for another worker", runtime().clock.now()
        )
    if refused:
        flash(refused)
    else:
        enqueue.dispatch_request(runtime().redis, found.id or 0)
        flash("Another worker will be asked.")
    return redirect(url_for(".show", number=number))


@bp.post("/<number>/note")
@requires(*STAFF, *OFFICERS)
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


# -- the worker's visit: the citizen's codes sent again, or made anew (dispatch/visit.py) ------------

CODE_ACTIONS = {"resend": visit.resend_code, "reset": visit.reset_code}
CODE_DONE = {
    ("resend", visit.Code.START): N_("The start code was sent to the citizen again."),
    ("resend", visit.Code.COMPLETION): N_("The completion code was sent to the citizen again."),
    ("reset", visit.Code.START): N_("A new start code was sent to the citizen; the old one no longer works."),
    ("reset", visit.Code.COMPLETION): N_("A new completion code was sent to the citizen; the old one no longer works."),
}


@bp.post("/<number>/code")
@requires(*STAFF)
def code(number: str) -> ResponseReturnValue:
    """An agent sends the citizen their start or completion code again, or makes a new one (the old
    stops working; a start code locked by wrong tries opens again): audited with the agent's name."""
    action, which = request.form.get("action", ""), request.form.get("code", "")
    if action not in CODE_ACTIONS or which not in {c.value for c in visit.Code}:
        flash("Choose a code and what to do with it.")
        return redirect(url_for(".show", number=number))
    kind = visit.Code(which)
    settings = runtime().settings
    with session_scope(runtime().engine) as db:
        found = _request(db, number)
        sent = CODE_ACTIONS[action](db, settings, found.id or 0, kind, auth.actor(), runtime().clock.now())
    if sent.error:
        flash(sent.error)
        return redirect(url_for(".show", number=number))
    for sms_id in sent.sms:
        enqueue.send_sms(runtime().redis, sms_id)
    flash(CODE_DONE[(action, kind)])
    return redirect(url_for(".show", number=number))
