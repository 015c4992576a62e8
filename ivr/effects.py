"""What the helpline flow asks the edge to do: look up, store, queue. One handler per effect.

Each handler commits its own transaction before anything is sent, so a request the caller hears
confirmed is in the database whatever happens next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import numbers, phones, pincodes, slots
from core.clock import SYSTEM, Clock
from core.settings import Settings
from dispatch import availability, bridge, changes, enqueue, inbox, notice, privacy_requests, retention, rework, visit
from dispatch import offers as dispatch_offers
from dispatch.availability import Via
from dispatch.intake import Intake, caller_id_for, file_request, queue_follow_ups
from flows.engine import Dial, Outcome
from storage import audit
from storage.audit import AuditAction
from storage.db import autocommit_session, autocommitted, rows_of, session_scope, upsert
from storage.models import (
    CallbackRequest,
    Caller,
    Channel,
    Offer,
    PrivacyRequestKind,
    Recording,
    RecordingKind,
    RequestStatus,
    ServiceRequest,
    Worker,
)
from telephony import call

log = logging.getLogger(__name__)
OPEN_STATUSES = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
FEEDBACK = "ivr:feedback"  # the actor of what the citizen keys on the feedback call
MAX_OPEN_READ = 3  # a caller hears at most this many of their open requests


@dataclass(frozen=True)
class CallContext:
    settings: Settings
    engine: sa.Engine
    redis: redis.Redis
    call_sid: str
    caller: str | None  # E.164, None when withheld
    turn: int
    language: str
    clock: Clock = SYSTEM  # the process's (Runtime.clock); tests freeze it

    def now(self) -> datetime:
        return self.clock.now()


Handler = Callable[[CallContext, Mapping[str, str]], Outcome]


def lookup_pincode(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    place = pincodes.lookup(args.get("pincode", ""))
    if place is None:
        return Outcome("unknown")
    district = pincodes.display_name(place.district, ctx.language)  # read back in the caller's language
    if not place.in_state(ctx.settings.service_area.state):
        return Outcome("outside", {"district": district})
    return Outcome("found", {"district": district})


# The slot menu (helpline.yaml's choose_slot): slots on keys 1-8 in order, "as soon as possible" on 9
# (0 is an agent's, as at every menu).
SLOT_KEYS = 8


def find_slots(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    """The slots open now, soonest first, each with its key and its words in the caller's language,
    for the slot menu (`pick_slot` in helpline.yaml); `none` when no slot is open (late at night with
    one day ahead, a holiday): the visit is then booked as soon as possible."""
    now = ctx.now()
    open_now = slots.upcoming(ctx.settings, now)[:SLOT_KEYS]
    if not open_now:
        return Outcome("none", {"slot": "", "slot_words": _asap(ctx, now)})
    rows = [
        {
            "digit": str(place),
            "slot": slot.key,
            "slot_words": slots.describe(ctx.settings, slot.starts_at, slot.ends_at, ctx.language, now, spoken=True),
        }
        for place, slot in enumerate(open_now, start=1)
    ]
    return Outcome("open", {"slots": rows, "slot": "", "slot_words": _asap(ctx, now)})


def _asap(ctx: CallContext, now: datetime) -> str:
    return slots.when(ctx.settings, None, None, ctx.language, now)


def picked_slot(ctx: CallContext, key: str) -> slots.Slot | None:
    """The slot the caller picked, while it has not ended: one picked a minute ago that is now within
    the lead time is still theirs; none picked (or gone by, in a call that long) is as soon as possible.
    The key is the call state's, from find_slots: one further off than the calendar reaches is refused."""
    slot = slots.parse(ctx.settings, key) if key else None
    now = ctx.now()
    furthest = now + timedelta(days=ctx.settings.slots.days_ahead + 1)
    return slot if slot is not None and now < slot.ends_at and slot.starts_at < furthest else None


def create_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """Store the request (once per call turn, however often Twilio retries), then text its number."""
    place = pincodes.lookup(args.get("pincode", ""))
    service = args.get("service", "")
    if place is None or service not in ctx.settings.service_codes:
        return Outcome("failed")
    slot = picked_slot(ctx, args.get("slot", ""))
    intake = Intake(
        service=service,
        place=place,
        phone=ctx.caller,
        language=ctx.language,
        channel=Channel.IVR,
        actor="ivr",
        filed_at=ctx.now(),
        idempotency_key=f"ivr:{ctx.call_sid}:{ctx.turn}",
        slot=slot,
        detail=(("call_sid", ctx.call_sid),),
    )
    filed = file_request(ctx.engine, ctx.settings, intake)
    if args.get("address_recording") == "recorded":  # kept by this call's Record (or a retry of it)
        _attach_recordings(ctx, filed.id)
    queue_follow_ups(ctx.redis, filed)  # a retry finds the request filed before, and queues nothing again
    texted = ctx.caller is not None and _is_mobile(ctx.caller)
    words = slots.when(ctx.settings, filed.slot_starts_at, filed.slot_ends_at, ctx.language, ctx.now(), spoken=True)
    return Outcome(
        "created", {"request_number": filed.number, "sms_sent": "yes" if texted else "no", "slot_words": words}
    )


def _attach_recordings(ctx: CallContext, request_id: int) -> None:
    """The spoken address made earlier in this call belongs to the request it booked. The request is
    filed already: a failure here costs the worker the address, never the caller their booking."""
    try:
        with autocommitted(ctx.engine) as connection:
            connection.execute(_ATTACH_RECORDINGS, {"sid": ctx.call_sid, "filed": request_id})
    except sa.exc.SQLAlchemyError:
        log.exception("call %s: the spoken address could not be attached to request %s", ctx.call_sid, request_id)


# Built once: every booking on the phone runs it, and building it took longer than running it. (An
# UPDATE's parameters may not bear its columns' names: those are the SET clause's.)
_ATTACH_RECORDINGS = (
    sa.update(Recording)
    .where(col(Recording.call_sid) == sa.bindparam("sid", type_=sa.String), col(Recording.request_id).is_(None))
    .values(request_id=sa.bindparam("filed", type_=sa.Integer))
)


# -- the spoken address ----------------------------------------------------------------------------

MIN_RECORDING_SECONDS = 1  # shorter is a beep and a key: nothing said


def _kept_once() -> sa.Insert:
    """INSERT … SELECT the recording's values WHERE NOT EXISTS one of the same call and turn: a retry of
    the turn keeps nothing twice, in one round trip (on SQLite and PostgreSQL alike)."""
    table = sa.inspect(Recording).local_table
    names = ("call_sid", "turn", "platform", "recording_id", "url", "duration_s", "created_at", "kind")
    kept = sa.exists().where(
        table.c.call_sid == sa.bindparam("call_sid"), table.c.turn == sa.bindparam("turn", type_=sa.Integer)
    )
    values = sa.select(*(sa.bindparam(name, type_=table.c[name].type) for name in names)).where(~kept)
    return sa.insert(Recording).from_select(names, values, include_defaults=False)


_KEEP_RECORDING_ONCE = _kept_once()  # built once: the booking turn keeps one


def keep_recording(ctx: CallContext, made: call.Recording | None) -> Outcome:
    """A Record's action: `empty` when nothing was said (or the platform made no recording: `made`
    None), `failed` when the platform named no recording or the helpline could not keep it; else the
    recording is kept (once, whatever the platform's retries) and `recorded`."""
    seconds = _seconds(made.duration) if made is not None else 0
    if made is None or seconds < MIN_RECORDING_SECONDS:
        return Outcome("empty", {"address_recording": "empty"})
    if not (made.recording_id and made.url) or len(made.recording_id) > 64 or len(made.url) > 500:
        log.warning("call %s: the platform's recording came without its id or URL", ctx.call_sid)
        return Outcome("failed", {"address_recording": "failed"})
    values = {
        "call_sid": ctx.call_sid,
        "turn": ctx.turn,
        "platform": ctx.settings.telephony.platform,
        "recording_id": made.recording_id,
        "url": made.url,
        "duration_s": seconds,
        "created_at": ctx.now(),
        "kind": RecordingKind.ADDRESS,
    }
    try:
        with autocommitted(ctx.engine) as connection:  # one statement: kept unless this turn's is already
            connection.execute(_KEEP_RECORDING_ONCE, values)
    except sa.exc.SQLAlchemyError:
        log.exception("call %s: the spoken address could not be kept", ctx.call_sid)
        return Outcome("failed", {"address_recording": "failed"})
    return Outcome("recorded", {"address_recording": "recorded"})


def _seconds(raw: str) -> int:
    """A platform's duration in seconds ("12", "-1" for none on Plivo); 0 when it is not a number."""
    try:
        return max(int(float(raw)), 0) if len(raw) < 12 else 0
    except ValueError:
        return 0


def _is_mobile(phone: str) -> bool:
    """Only Indian mobile numbers can receive our SMS."""
    return phones.indian_mobile(phone) is not None


# a select of whole requests, or of some of their columns
_Query = TypeVar("_Query", bound=sa.Select[*tuple[Any, ...]])


def _of_caller(query: _Query, phone: object, statuses: tuple[RequestStatus, ...], limit: int) -> _Query:
    """`query` narrowed to a caller's requests in these states, the newest first. Each state is its own
    bind (not an expanding IN), so the statement runs on psycopg's cursor as it is (`rows_of`)."""
    status = col(ServiceRequest.status)
    return (
        query.join(Caller, col(Caller.id) == col(ServiceRequest.caller_id))
        .where(col(Caller.phone) == phone, sa.or_(*(status == state for state in statuses)))
        .order_by(col(ServiceRequest.created_at).desc())
        .limit(limit)
    )


def find_open_requests(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    if ctx.caller is None:
        return Outcome("none")
    with autocommitted(ctx.engine) as connection:  # a read: no BEGIN, no ROLLBACK
        rows = rows_of(connection, _OPEN_REQUESTS, {"phone": ctx.caller})
    if not rows:
        return Outcome("none")
    requests = [{"number": number, "service": service, "status": str(status)} for number, service, status in rows]
    return Outcome("found", {"requests": requests, "request_count": str(len(requests))})


def _open_requests() -> sa.Select[str, str, RequestStatus]:
    """A caller's open requests as the tracking menu reads them out. Built once: building it takes
    longer than running it."""
    columns = sa.select(col(ServiceRequest.number), col(ServiceRequest.service_code), col(ServiceRequest.status))
    return _of_caller(columns, sa.bindparam("phone", type_=sa.String), OPEN_STATUSES, MAX_OPEN_READ)


_OPEN_REQUESTS = _open_requests()


def _requests_of(session: Session, phone: str, statuses: tuple[RequestStatus, ...], limit: int) -> list[ServiceRequest]:
    """A caller's requests in these states, the newest first."""
    return list(session.exec(_of_caller(select(ServiceRequest), phone, statuses, limit)).all())


def find_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    number = args.get("number", "")
    if not numbers.is_valid(number):
        return Outcome("unknown")
    with autocommitted(ctx.engine) as connection:  # a read: no BEGIN, no ROLLBACK
        rows = rows_of(connection, _REQUEST_BY_NUMBER, {"number": number})
    if not rows:
        return Outcome("unknown")
    [(number, service, status)] = rows
    return Outcome("found", {"number": number, "service": service, "status": str(status)})


_REQUEST_BY_NUMBER = sa.select(
    col(ServiceRequest.number), col(ServiceRequest.service_code), col(ServiceRequest.status)
).where(col(ServiceRequest.number) == sa.bindparam("number", type_=sa.String))


def agents_available(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    return Outcome("open" if ctx.settings.call_centre.is_open(ctx.now()) else "closed")


def request_callback(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """Record that an agent should ring this caller back (once per call)."""
    if ctx.caller is None:
        return Outcome("failed")
    reason = args.get("reason") or ("out_of_hours" if not ctx.settings.call_centre.is_open(ctx.now()) else "asked")
    record_callback(ctx, reason)
    return Outcome("recorded")


def record_callback(ctx: CallContext, reason: str, request_id: int | None = None) -> bool:
    if ctx.caller is None:
        return False
    with session_scope(ctx.engine) as session:
        if session.exec(select(CallbackRequest).where(CallbackRequest.call_sid == ctx.call_sid)).first():
            return True
        caller_id = caller_id_for(session, ctx.caller, ctx.language, ctx.settings.privacy_key)
        callback = CallbackRequest(
            phone=ctx.caller,
            caller_id=caller_id,
            language=ctx.language,
            reason=reason,
            call_sid=ctx.call_sid,
            request_id=request_id,
            created_at=ctx.now(),
        )
        session.add(callback)
        session.flush()
        audit.record(
            session,
            AuditAction.CALLBACK_REQUESTED,
            actor="ivr",
            entity="callback_request",
            entity_id=callback.id,
            reason=reason,
        )
    return True


def send_privacy_notice(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """A caller the helpline has not seen: the notice's figure for the flow to say, its link by SMS."""
    values = {"retention_days": str(ctx.settings.privacy.retention.citizens)}
    if ctx.caller is None:
        return Outcome("no_sms", values)
    try:
        sent, remembered = _privacy_notice(ctx, ctx.caller)
    except sa.exc.SQLAlchemyError:  # the notice is still heard; the call goes on to the menu
        log.exception("the privacy notice's SMS could not be recorded for call %s", ctx.call_sid)
        return Outcome("no_sms", values)
    if remembered is not None:  # the turn's end need not write the caller's language again
        values["known_language"] = ctx.language
        if remembered.new_caller:  # no request of theirs to be put through to
            values["new_caller"] = "yes"
    return Outcome("sent" if sent is not None else "no_sms", values)


def _privacy_notice(ctx: CallContext, caller: str) -> tuple[int | None, notice.FirstCall | None]:
    """The notice's SMS recorded and its sending queued (its id, or None for a number that cannot get
    one); on PostgreSQL with the caller remembered in their language by the same statement (what it
    did), elsewhere on its own (None: the turn's end remembers them)."""
    if ctx.engine.dialect.name != "postgresql":
        return notice.send_privacy_notice(ctx.engine, ctx.redis, ctx.settings, caller, ctx.language), None
    key = ctx.settings.privacy_key
    erased = retention.erased_form(caller, key) if key else None
    first = notice.greet_first_call(ctx.engine, ctx.redis, ctx.settings, caller, ctx.language, ctx.now(), erased)
    return first.sms_id, first


def remember_language(ctx: CallContext) -> None:
    """A returning caller is greeted in the language they chose last time (a new one is added)."""
    if ctx.caller is None:
        return
    now = ctx.now()
    values = {"phone": ctx.caller, "language": ctx.language, "created_at": now, "last_seen_at": now}
    # Each statement commits as it runs: an erased caller's number given back stands on its own (their
    # next call gives it back anyway), and no BEGIN and COMMIT round trips wrap the two.
    with autocommitted(ctx.engine) as connection:
        retention.returning_caller(connection, ctx.caller, ctx.settings.privacy_key)
        upsert(connection, Caller, values, key="phone", update=("language", "last_seen_at"))


@dataclass(frozen=True)
class KnownWorker:
    """A registered, active worker ringing in (or rung), as the worker flow greets them."""

    id: int
    name: str
    language: str


def who_rings(engine: sa.Engine, phone: str | None) -> tuple[KnownWorker | None, str | None]:
    """A registered, active worker, recognised by the number they call from; else the language a
    citizen chose last time. One round trip: a call's first turn waits on it."""
    if phone is None:
        return None, None
    with autocommitted(engine) as connection:
        rows = rows_of(connection, _WHO_RINGS, {"phone": phone})
    for worker_id, name, language in rows:
        if worker_id is not None:
            return KnownWorker(worker_id, name, language), None
    return None, rows[0][2] if rows else None


def _who_rings() -> sa.CompoundSelect[Any]:
    """Built once: building the statement takes longer than running it."""
    phone = sa.bindparam("phone", type_=sa.String)
    workers = sa.select(col(Worker.id), col(Worker.name), col(Worker.language)).where(
        col(Worker.phone) == phone, col(Worker.active)
    )
    nothing = sa.cast(sa.null(), sa.Integer), sa.cast(sa.null(), sa.String)
    return sa.union_all(workers, sa.select(*nothing, col(Caller.language)).where(col(Caller.phone) == phone))


_WHO_RINGS = _who_rings()


def known_language(engine: sa.Engine, phone: str | None) -> str | None:
    if phone is None:
        return None
    with autocommit_session(engine) as session:  # a read: no BEGIN, no ROLLBACK
        return _language_of(session, phone)


def _language_of(session: Session, phone: str) -> str | None:
    return session.exec(select(Caller.language).where(Caller.phone == phone)).first()


# -- a worker on the phone -------------------------------------------------------------------------


def find_pending_offer(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    with Session(ctx.engine) as session:
        offer = dispatch_offers.pending_offer(session, _int(args.get("worker")), ctx.now())
        request = session.get(ServiceRequest, offer.request_id) if offer else None
        original = session.get(ServiceRequest, request.rework_of_id) if request and request.rework_of_id else None
    if offer is None or request is None:
        return Outcome("none")
    locality = _locality(request, ctx.language)
    when = slots.when(ctx.settings, request.slot_starts_at, request.slot_ends_at, ctx.language, ctx.now(), spoken=True)
    values = {
        "offer_id": str(offer.id),
        "offer_number": request.number,
        "offer_service": request.service_code,
        "offer_locality": locality,
        "offer_when": when,
    }
    if original is not None:  # a rework: the worker hears which job it visits again
        return Outcome("rework", values | {"rework_of": original.number})
    return Outcome("found", values)


def _locality(request: ServiceRequest, language: str) -> str:
    """'Lucknow, 2 2 6 0 0 1': the district in the caller's language, the PIN code digit by digit."""
    return f"{pincodes.display_name(request.district, language)}, {' '.join(request.pincode)}"


def answer_offer(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The worker keys 1 or 2 to an offer read out to them."""
    offer_id, worker_id = _int(args.get("offer")), _int(args.get("worker"))
    with Session(ctx.engine) as session:
        offer = session.get(Offer, offer_id)
    if offer is None or offer.worker_id != worker_id:
        return Outcome("taken")
    yes = args.get("answer") == "yes"
    answer = dispatch_offers.reply(
        ctx.engine,
        offer_id,
        yes,
        ctx.now(),
        f"worker:{worker_id}",
        allow_parallel_jobs=ctx.settings.dispatch.allow_parallel_jobs,
    )
    if answer is dispatch_offers.Answer.ACCEPTED:
        enqueue.notify_assigned(ctx.redis, offer.request_id)
        return Outcome("accepted")
    if answer is dispatch_offers.Answer.BUSY:  # a job in hand: this one goes on, the worker hears (and gets) why
        with Session(ctx.engine) as session:
            in_hand = dispatch_offers.job_in_hand(session, worker_id, but_not=offer.request_id)
        enqueue.dispatch_request(ctx.redis, offer.request_id)
        enqueue.worker_busy(ctx.redis, offer_id)
        return Outcome("busy", {"job_in_hand": in_hand.number if in_hand else ""})
    if answer is dispatch_offers.Answer.DECLINED:
        enqueue.dispatch_request(ctx.redis, offer.request_id)
        return Outcome("declined")
    return Outcome("taken")


def set_availability(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    worker_id, available = _int(args.get("worker")), args.get("state") == "available"
    with session_scope(ctx.engine) as session:
        availability.set_availability(
            session, worker_id, available, actor=f"worker:{worker_id}", channel=Via.IVR, now=ctx.now()
        )
    enqueue.reindex_worker(ctx.redis, worker_id, call_sid=ctx.call_sid)
    return Outcome("set")


def complete_job(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    worker_id = _int(args.get("worker"))
    with session_scope(ctx.engine) as session:
        request = dispatch_offers.complete(session, args.get("number", ""), worker_id, args.get("code", ""), ctx.now())
    if request is None:
        return Outcome("refused")
    enqueue.after_completion(ctx.redis, request.id or 0)
    return Outcome("completed")


# -- the worker's day: on the way, arrived, started with the citizen's code (dispatch/visit.py) -----


def visit_on_the_way(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The worker keyed in their ETA at the job menu: the citizen is texted it and the start code."""
    minutes = _int(args.get("minutes"))
    done = _visit_step(ctx, args, lambda s, r, w: visit.on_the_way(s, ctx.settings, r, w, minutes, ctx.now()))
    return Outcome("noted" if done.result in (visit.Result.NOTED, visit.Result.AGAIN) else "refused")


def visit_arrived(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    done = _visit_step(ctx, args, lambda s, r, w: visit.arrived(s, ctx.settings, r, w, ctx.now()))
    return Outcome("noted" if done.result in (visit.Result.NOTED, visit.Result.AGAIN) else "refused")


def visit_start(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The start code the citizen told the worker, keyed in: started, wrong (tries left), locked."""
    code = args.get("code", "")
    done = _visit_step(ctx, args, lambda s, r, w: visit.start(s, ctx.settings, r, w, code, ctx.now()))
    outcomes = {
        visit.Result.NOTED: "started",
        visit.Result.NO_CODE: "code_sent",
        visit.Result.WRONG_CODE: "wrong",
        visit.Result.LOCKED: "locked",
    }
    return Outcome(outcomes.get(done.result, "refused"), {"tries_left": str(done.tries_left)})


VisitStep = Callable[[Session, ServiceRequest, int], visit.Visited]


def _visit_step(ctx: CallContext, args: Mapping[str, str], step: VisitStep) -> visit.Visited:
    """One step of the worker's visit on the job they picked, committed before the SMS it calls for go."""
    worker_id = _int(args.get("worker"))
    with session_scope(ctx.engine) as session:
        request = session.get(ServiceRequest, _int(args.get("job")))
        if request is None or request.worker_id != worker_id:
            return visit.Visited(visit.Result.REFUSED)
        done = step(session, request, worker_id)
    for sms_id in done.sms:
        enqueue.send_sms(ctx.redis, sms_id)
    return done


# -- worker and citizen, put through to each other by the helpline ---------------------------------


def find_jobs(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The worker's jobs whose customer they may ring through the helpline: one, several to pick from, none."""
    jobs = _jobs(ctx, args)
    if not jobs:
        return Outcome("none")
    if len(jobs) == 1:
        return Outcome("one", _job(jobs[0], ctx.language))
    rows = [
        {"place": str(place), "number": j.number, "service": j.service_code, "locality": _locality(j, ctx.language)}
        for place, j in enumerate(jobs, start=1)
    ]
    return Outcome("several", {"jobs": rows, "job_count": str(len(jobs))})


def pick_job(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The job the worker picked by its place in the list they heard."""
    jobs, place = _jobs(ctx, args), _int(args.get("place"))
    if not 1 <= place <= len(jobs):
        return Outcome("unknown")
    return Outcome("picked", _job(jobs[place - 1], ctx.language))


def _jobs(ctx: CallContext, args: Mapping[str, str]) -> list[ServiceRequest]:
    with Session(ctx.engine) as session:
        return bridge.jobs_of(session, _int(args.get("worker")), ctx.now(), ctx.settings.privacy.bridged_calls)


def _job(job: ServiceRequest, language: str) -> dict[str, str]:
    return {
        "job_id": str(job.id),
        "job_number": job.number,
        "job_service": job.service_code,
        "job_locality": _locality(job, language),
    }


def find_worker_to_call(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    """A citizen's request whose worker the helpline may put them through to; or one that closed for
    calls lately, and why."""
    if ctx.caller is None:
        return Outcome("none")
    window = ctx.settings.privacy.bridged_calls
    with autocommitted(ctx.engine) as connection:  # one read: no BEGIN and ROLLBACK round trips
        request, closed = bridge.request_of_citizen(connection, ctx.caller, ctx.now(), window)
    if request is None:
        return Outcome("none")
    values = {"bridge_request": str(request.id), "bridge_number": request.number}
    if closed is not None:
        values |= {"closed_why": closed.value, "bridge_hours": str(window.after_completion_hours)}
        return Outcome("closed", values)
    status = "assigned" if request.status is RequestStatus.ASSIGNED else "done"
    return Outcome("found", {**values, "bridge_status": status})


def to_dial(ctx: CallContext, dial: Dial) -> bridge.Dialled | bridge.Closed:
    """The number a flow's dial puts the caller through to, looked up now (never kept in the call's
    state); or why the call cannot be made."""
    ringing = bridge.Party.WORKER if dial.party == bridge.Party.CITIZEN else bridge.Party.CITIZEN
    with Session(ctx.engine) as session:
        return bridge.dialled(
            session, _int(dial.args.get("request")), ringing, ctx.caller, ctx.now(), ctx.settings.privacy.bridged_calls
        )


def record_bridged_call(ctx: CallContext, dial: Dial, outcome: str, seconds: int, actor: str) -> None:
    """A dial that went out, on its request's timeline."""
    ringing = bridge.Party.WORKER if dial.party == bridge.Party.CITIZEN else bridge.Party.CITIZEN
    with session_scope(ctx.engine) as session:
        bridge.record_call(session, _int(dial.args.get("request")), ringing, actor, outcome, seconds)


def find_address_recording(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The spoken address of a job, for the worker it is assigned to (and only them): the platform
    plays its own recording; the worker never hears or is given the citizen's number. A rework visit
    has the address of the job it redoes."""
    worker_id = _int(args.get("worker"))
    with Session(ctx.engine) as session:
        request = session.exec(select(ServiceRequest).where(ServiceRequest.number == args.get("number", ""))).first()
        if request is None or request.worker_id != worker_id or request.status is not RequestStatus.ASSIGNED:
            return Outcome("refused")
        spoken_at = [request.id, request.rework_of_id] if request.rework_of_id else [request.id]
        recording = session.exec(
            select(Recording)
            .where(col(Recording.request_id).in_(spoken_at), col(Recording.erased_at).is_(None), Recording.url != "")
            .where(Recording.kind == RecordingKind.ADDRESS)  # never an officer's call with the citizen
            .order_by(col(Recording.id).desc())
        ).first()
    if recording is None:
        return Outcome("none")
    audit_heard(ctx.engine, recording.id or 0, f"worker:{worker_id}", "ivr")
    return Outcome("found", {"address_url": recording.url})


def audit_heard(engine: sa.Engine, recording_id: int, actor: str, via: str) -> None:
    with session_scope(engine) as session:
        audit.record(
            session, AuditAction.RECORDING_PLAYED, actor=actor, entity="recording", entity_id=recording_id, reason=via
        )


# -- the citizen's feedback call ----------------------------------------------------------------------


def find_completed_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The job the feedback call is about: the one it was placed for, else the caller's latest."""
    if ctx.caller is None:
        return Outcome("none")
    with Session(ctx.engine) as session:
        done = [
            r
            for r in _requests_of(session, ctx.caller, (RequestStatus.COMPLETED,), limit=20)
            if not args.get("request") or str(r.id) == args["request"]
        ][:1]
    if not done:
        return Outcome("none")
    return Outcome("found", {"request_id": str(done[0].id), "number": done[0].number, "service": done[0].service_code})


def record_rating(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The citizen's key: the rating closes the job; a low one books its rework visit ("rework")."""
    rating = _int(args.get("rating"))
    if not 1 <= rating <= 5:
        return Outcome("failed")
    rules = ctx.settings
    with session_scope(ctx.engine) as session:
        request = session.get(ServiceRequest, _int(args.get("request")))
        if request is None:
            return Outcome("failed")
        worker_id = request.worker_id
        if not inbox.rate(session, request, rating, actor=FEEDBACK):
            return Outcome("saved")  # rated before (the SMS, a retry): nothing more to do
        reopened = rework.after_rating(
            session, request.id or 0, rating, rules.rework, rules.workers_quality, FEEDBACK, ctx.now()
        )
        told = rework.text_to_citizen(session, rules, request.id or 0, reopened)
    if worker_id is not None:
        enqueue.reindex_worker(ctx.redis, worker_id, call_sid=ctx.call_sid)
    return _reworked(ctx, reopened, told) or Outcome("saved")


def report_problem(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """A problem after the job: its rework visit within `rework.window_days` ("rework"); past it, the
    request goes back to an agent (escalated: "recorded")."""
    rules = ctx.settings
    with session_scope(ctx.engine) as session:
        reopened = rework.problem_reported(
            session, _int(args.get("request")), rules.rework, rules.workers_quality, FEEDBACK, ctx.now()
        )
        told = rework.text_to_citizen(session, rules, _int(args.get("request")), reopened)
    if reopened.escalated:
        return Outcome("recorded")
    return _reworked(ctx, reopened, told) or Outcome("failed")


def _reworked(ctx: CallContext, reopened: rework.Reopened, told: int | None) -> Outcome | None:
    """A rework booked: its dispatch and the citizen's SMS queued (after the commit), its number for
    the caller to hear."""
    if not reopened.new or reopened.rework_id is None:
        return None
    enqueue.dispatch_request(ctx.redis, reopened.rework_id)
    if told is not None:
        enqueue.send_sms(ctx.redis, told)
    return Outcome("rework", {"rework_id": str(reopened.rework_id), "rework_number": reopened.number or ""})


def rework_other_worker(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The citizen keys for a different worker than last time: the first one is not asked ("changed"),
    unless a worker already has the visit ("kept")."""
    rework_id = _int(args.get("rework"))
    with session_scope(ctx.engine) as session:
        refused = rework.another_worker(session, rework_id, FEEDBACK, "the citizen asked for another worker", ctx.now())
    if refused is not None:
        return Outcome("kept")
    enqueue.dispatch_request(ctx.redis, rework_id)
    return Outcome("changed")


# -- the caller's own data (DPDP Act 2023 s.11-12) -----------------------------------------------------


def privacy_access(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    """What the helpline holds about the caller, to be read out (their number, their open requests, how
    long things are kept); filed as an access request given, as one an agent gives."""
    if ctx.caller is None:
        return Outcome("withheld")
    with session_scope(ctx.engine) as session:
        caller_id = caller_id_for(session, ctx.caller, ctx.language, ctx.settings.privacy_key)
        kind, now = PrivacyRequestKind.ACCESS, ctx.now()
        privacy_requests.file(session, caller_id, kind, filed_by=None, actor=privacy_requests.BY_PHONE, now=now)
        rows = _requests_of(session, ctx.caller, OPEN_STATUSES, limit=MAX_OPEN_READ)
        requests = [{"number": r.number, "service": r.service_code, "status": r.status.value} for r in rows]
    kept = ctx.settings.privacy.retention
    values = {
        "held_number": retention.searchable(ctx.caller),
        "requests": requests,
        "request_count": str(len(requests)),
        "retention_days": str(kept.citizens),
        "recording_days": str(kept.recordings),
    }
    return Outcome("found" if requests else "none", values)


def privacy_erasure(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    """The caller asks for their data to be erased: filed for a supervisor (once: a second ask finds
    it waiting); they are told by SMS when it is decided, if their number takes SMS."""
    if ctx.caller is None:
        return Outcome("withheld")
    with session_scope(ctx.engine) as session:
        caller_id = caller_id_for(session, ctx.caller, ctx.language, ctx.settings.privacy_key)
        kind, now = PrivacyRequestKind.ERASURE, ctx.now()
        filed = privacy_requests.file(session, caller_id, kind, filed_by=None, actor=privacy_requests.BY_PHONE, now=now)
    return Outcome("filed" if filed.new else "waiting", {"sms": "yes" if _is_mobile(ctx.caller) else "no"})


# -- the caller changes or cancels their own request (dispatch/changes.py) ------------------------------


def find_changeable_requests(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    """The caller's own open requests (by the number they call from; never one named by its number)."""
    if ctx.caller is None:
        return Outcome("none")
    with autocommit_session(ctx.engine) as session:  # a read: no BEGIN, no ROLLBACK
        rows = _requests_of(session, ctx.caller, OPEN_STATUSES, limit=MAX_OPEN_READ)
    if not rows:
        return Outcome("none")
    if len(rows) == 1:
        return Outcome("one", _changing(rows[0]))
    listed = [{"place": str(i), "number": r.number, "service": r.service_code} for i, r in enumerate(rows, start=1)]
    return Outcome("several", {"change_requests": listed, "change_count": str(len(rows))})


def pick_changeable_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The request the caller picked by its place in the list they heard."""
    if ctx.caller is None:
        return Outcome("unknown")
    with autocommit_session(ctx.engine) as session:  # a read: no BEGIN, no ROLLBACK
        rows = _requests_of(session, ctx.caller, OPEN_STATUSES, limit=MAX_OPEN_READ)
    place = _int(args.get("place"))
    return Outcome("one", _changing(rows[place - 1])) if 1 <= place <= len(rows) else Outcome("unknown")


def _changing(request: ServiceRequest) -> dict[str, str]:
    return {"change_request": str(request.id), "change_number": request.number}


def _callers_request(session: Session, ctx: CallContext, args: Mapping[str, str]) -> ServiceRequest | None:
    """The request the flow names, if it is the caller's own."""
    request = session.get(ServiceRequest, _int(args.get("request")))
    caller = session.get(Caller, request.caller_id) if request and request.caller_id else None
    return request if caller is not None and ctx.caller is not None and caller.phone == ctx.caller else None


def change_policy(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """May the caller change it themselves (`changes:` in config.yaml), must an agent, or is it closed?
    With `free`, the reasons a cancel is keyed from."""
    with Session(ctx.engine) as session:
        request = _callers_request(session, ctx, args)
        if request is None:
            return Outcome("closed")
        verdict = changes.verdict(ctx.settings.changes, request, ctx.now())
    reasons = [
        {"place": str(i), "name": reason.name(ctx.language)}
        for i, reason in enumerate(ctx.settings.changes.reasons, start=1)
    ]
    return Outcome(verdict.value, {"cancel_reasons": reasons})


def cancel_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The caller cancels their request with the reason they keyed; the workers it concerns are told."""
    rules, place = ctx.settings.changes, _int(args.get("reason"))
    if not 1 <= place <= len(rules.reasons):
        return Outcome("unknown")
    with session_scope(ctx.engine) as session:
        request = _callers_request(session, ctx, args)
        if request is None:
            return Outcome("failed")
        why = changes.Why(rules.reasons[place - 1])
        actor = f"caller:{request.caller_id}"
        changed = changes.cancel(session, request.id or 0, why, actor, ctx.now(), citizen=rules, via="ivr")
    return _told(ctx, changed, "cancelled")


def _told(ctx: CallContext, changed: changes.Changed, done: str, **values: str) -> Outcome:
    """After the commit: the workers told; the outcome the flow goes on with."""
    if changed.ok:
        changes.tell(ctx.redis, changed)
        return Outcome(done, values)
    return Outcome("agent" if changed.error == changes.NEEDS_AGENT or changes.clashes(changed) else "failed")


def reschedule_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """The caller's request moved to the slot they picked at `pick_slot`; `kept` when they picked none
    (as soon as possible, or none was open: a booked visit is not unbooked on the phone), `gone` when
    it closed meanwhile. A worker who has the job keeps it and is told."""
    if not args.get("slot"):
        return Outcome("kept")
    slot = slots.find(ctx.settings, args["slot"], ctx.now())
    if slot is None:
        return Outcome("gone")
    with session_scope(ctx.engine) as session:
        request = _callers_request(session, ctx, args)
        if request is None:
            return Outcome("failed")
        actor = f"caller:{request.caller_id}"
        changed = changes.reschedule(
            session, ctx.settings, request.id or 0, slot, actor, ctx.now(), by_citizen=True, via="ivr"
        )
    words = slots.describe(ctx.settings, slot.starts_at, slot.ends_at, ctx.language, ctx.now())
    if changed.error == changes.SAME_SLOT:  # what they asked for is what they have
        return Outcome("moved", {"change_new_slot": words})
    return _told(ctx, changed, "moved", change_new_slot=words)


def change_callback(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """Out of hours, an agent owes the caller a call about the change they asked for (once per call)."""
    with Session(ctx.engine) as session:
        request = _callers_request(session, ctx, args)
    if request is None or not record_callback(ctx, changes.CALLBACK_REASON, request.id):
        return Outcome("failed")
    return Outcome("recorded")


def _int(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() else 0


@dataclass(frozen=True)
class Performed:
    """An effect this helpline can perform: its handler, every outcome the handler reports, whether
    it only reads (it writes nothing and may run again for the same step, as a retry does), and
    whether what it reads is anyone's record (a request, an offer, a job), not what any caller may
    hear (the PIN codes, the slots open now, whether agents are in), and whether its outcome depends
    on nothing but its arguments, the caller's language and what the process loaded at start (a PIN
    code's district; not the slots open now, nor whether agents are in): the same for every call that
    asks the same, so a menu turn that performed it may be answered from memory (`ivr.menuturns`)."""

    perform: Handler
    outcomes: frozenset[str]
    reads_only: bool = False
    reads_records: bool = True
    static: bool = False


def _performs(handler: Handler, *outcomes: str) -> Performed:
    return Performed(handler, frozenset(outcomes))


def _reads(handler: Handler, *outcomes: str) -> Performed:
    return Performed(handler, frozenset(outcomes), reads_only=True)


def _reads_public(handler: Handler, *outcomes: str) -> Performed:
    return Performed(handler, frozenset(outcomes), reads_only=True, reads_records=False)


def _reads_static(handler: Handler, *outcomes: str) -> Performed:
    return Performed(handler, frozenset(outcomes), reads_only=True, reads_records=False, static=True)


# The one list of effects a flow may name: `flows check` and the flows loaded at start refuse any other.
EFFECTS: dict[str, Performed] = {
    "find_pending_offer": _reads(find_pending_offer, "found", "rework", "none"),
    "answer_offer": _performs(answer_offer, "accepted", "declined", "taken", "busy"),
    "set_availability": _performs(set_availability, "set"),
    "complete_job": _performs(complete_job, "completed", "refused"),
    "visit_on_the_way": _performs(visit_on_the_way, "noted", "refused"),
    "visit_arrived": _performs(visit_arrived, "noted", "refused"),
    "visit_start": _performs(visit_start, "started", "code_sent", "wrong", "locked", "refused"),
    "find_address_recording": _performs(find_address_recording, "found", "none", "refused"),
    "find_completed_request": _reads(find_completed_request, "found", "none"),
    "record_rating": _performs(record_rating, "saved", "rework", "failed"),
    "report_problem": _performs(report_problem, "recorded", "rework", "failed"),
    "rework_other_worker": _performs(rework_other_worker, "changed", "kept"),
    "lookup_pincode": _reads_static(lookup_pincode, "found", "unknown", "outside"),
    "find_slots": _reads_public(find_slots, "open", "none"),
    "create_request": _performs(create_request, "created", "failed"),
    "find_open_requests": _reads(find_open_requests, "found", "none"),
    "find_request": _reads(find_request, "found", "unknown"),
    "agents_available": _reads_public(agents_available, "open", "closed"),
    "request_callback": _performs(request_callback, "recorded", "failed"),
    "send_privacy_notice": _performs(send_privacy_notice, "sent", "no_sms"),
    "find_jobs": _reads(find_jobs, "one", "several", "none"),
    "pick_job": _reads(pick_job, "picked", "unknown"),
    "find_worker_to_call": _reads(find_worker_to_call, "found", "closed", "none"),
    "privacy_access": _performs(privacy_access, "found", "none", "withheld"),
    "privacy_erasure": _performs(privacy_erasure, "filed", "waiting", "withheld"),
    "find_changeable_requests": _reads(find_changeable_requests, "one", "several", "none"),
    "pick_changeable_request": _reads(pick_changeable_request, "one", "unknown"),
    "change_policy": _reads(change_policy, *changes.Verdict),
    "cancel_request": _performs(cancel_request, "cancelled", "agent", "unknown", "failed"),
    "reschedule_request": _performs(reschedule_request, "moved", "kept", "agent", "gone", "failed"),
    "change_callback": _performs(change_callback, "recorded", "failed"),
}


def known_effects() -> dict[str, frozenset[str]]:
    """Each effect's name and outcomes, as `flows.definition.load` checks a flow against them."""
    return {name: effect.outcomes for name, effect in EFFECTS.items()}
