"""What the helpline flow asks the edge to do: look up, store, queue. One handler per effect.

Each handler commits its own transaction before anything is sent, so a request the caller hears
confirmed is in the database whatever happens next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from sqlmodel import Session, select

from dispatch import jobs
from dispatch.queues import QueueName, queue
from flows.engine import Outcome
from storage import numbers, phones, pincodes
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    CallbackRequest,
    Caller,
    Channel,
    RequestStatus,
    ServiceRequest,
    SmsLog,
    utcnow,
)
from storage.settings import Settings

log = logging.getLogger(__name__)
OPEN_STATUSES = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
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
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


Handler = Callable[[CallContext, Mapping[str, str]], Outcome]


def lookup_pincode(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    place = pincodes.lookup(args.get("pincode", ""))
    if place is None:
        return Outcome("unknown")
    district = pincodes.display_name(place.district)
    if not place.in_state(ctx.settings.service_area.state):
        return Outcome("outside", {"district": district})
    return Outcome("found", {"district": district})


def create_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """Store the request (once per call turn, however often Twilio retries), then text its number."""
    place = pincodes.lookup(args.get("pincode", ""))
    service = args.get("service", "")
    if place is None or service not in ctx.settings.service_codes:
        return Outcome("failed")
    key = f"ivr:{ctx.call_sid}:{ctx.turn}"
    with session_scope(ctx.engine) as session:
        request = session.exec(select(ServiceRequest).where(ServiceRequest.idempotency_key == key)).first()
        created = request is None
        if request is None:
            request, sms_id = _store_request(session, ctx, key, service, place)
        else:
            sms_id = None  # a retry: already stored, texted and queued
    if sms_id is not None:
        _enqueue(ctx, QueueName.DEFAULT, jobs.send_sms, sms_id, job_id=f"sms-{sms_id}", retry=jobs.SMS_RETRY)
    if created:
        _enqueue(ctx, QueueName.DISPATCH, jobs.dispatch_request, request.id, job_id=f"dispatch-{request.id}")
    texted = ctx.caller is not None and _is_mobile(ctx.caller)
    return Outcome("created", {"request_number": request.number, "sms_sent": "yes" if texted else "no"})


def _store_request(session: Session, ctx: CallContext, key: str, service: str,
                   place: pincodes.Place) -> tuple[ServiceRequest, int | None]:  # fmt: skip
    caller = _caller(session, ctx.caller, ctx.language) if ctx.caller else None
    request = ServiceRequest(
        number=_unused_number(session), idempotency_key=key, service_code=service, pincode=place.pincode,
        district=place.district, latitude=place.latitude, longitude=place.longitude,
        caller_id=caller.id if caller else None, language=ctx.language, channel=Channel.IVR,
    )  # fmt: skip
    session.add(request)
    session.flush()
    session.add(AuditEvent(actor="ivr", action="request.created", entity="service_request", entity_id=request.id,
                           to_status=RequestStatus.NEW.value, detail={"call_sid": ctx.call_sid}))  # fmt: skip
    if ctx.caller is None or not _is_mobile(ctx.caller):
        return request, None
    sms = SmsLog(to_number=ctx.caller, body=_request_sms(ctx, request), template="request_created",
                 status="pending", request_id=request.id)  # fmt: skip
    session.add(sms)
    session.flush()
    return request, sms.id


def _request_sms(ctx: CallContext, request: ServiceRequest) -> str:
    template = ctx.settings.sms.templates["request_created"]
    service = ctx.settings.service(request.service_code).name(ctx.language)
    return template.text(ctx.language).format(number=request.number, service=service)


def _unused_number(session: Session) -> str:
    for _ in range(20):
        number = numbers.new_request_number()
        if session.exec(select(ServiceRequest.id).where(ServiceRequest.number == number)).first() is None:
            return number
    raise RuntimeError("no free request number found in 20 draws")


def _caller(session: Session, phone: str, language: str) -> Caller:
    caller = session.exec(select(Caller).where(Caller.phone == phone)).first()
    if caller is None:
        caller = Caller(phone=phone, language=language)
        session.add(caller)
        session.flush()
    return caller


def _is_mobile(phone: str) -> bool:
    """Only Indian mobile numbers can receive our SMS."""
    return phones.indian_mobile(phone) is not None


def find_open_requests(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    if ctx.caller is None:
        return Outcome("none")
    with Session(ctx.engine) as session:
        rows = session.exec(
            select(ServiceRequest)
            .join(Caller, Caller.id == ServiceRequest.caller_id)  # type: ignore[arg-type]
            .where(Caller.phone == ctx.caller, ServiceRequest.status.in_(OPEN_STATUSES))  # type: ignore[attr-defined]
            .order_by(ServiceRequest.created_at.desc())  # type: ignore[attr-defined]
            .limit(MAX_OPEN_READ)
        ).all()
    if not rows:
        return Outcome("none")
    requests = [{"number": r.number, "service": r.service_code, "status": r.status.value} for r in rows]
    return Outcome("found", {"requests": requests, "request_count": str(len(requests))})


def find_request(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    number = args.get("number", "")
    if not numbers.is_valid(number):
        return Outcome("unknown")
    with Session(ctx.engine) as session:
        request = session.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
    if request is None:
        return Outcome("unknown")
    return Outcome("found", {"number": request.number, "service": request.service_code,
                             "status": request.status.value})  # fmt: skip


def agents_available(ctx: CallContext, _args: Mapping[str, str]) -> Outcome:
    return Outcome("open" if ctx.settings.call_centre.is_open(ctx.now()) else "closed")


def request_callback(ctx: CallContext, args: Mapping[str, str]) -> Outcome:
    """Record that an agent should ring this caller back (once per call)."""
    if ctx.caller is None:
        return Outcome("failed")
    reason = args.get("reason") or ("out_of_hours" if not ctx.settings.call_centre.is_open(ctx.now()) else "asked")
    record_callback(ctx, reason)
    return Outcome("recorded")


def record_callback(ctx: CallContext, reason: str) -> bool:
    if ctx.caller is None:
        return False
    with session_scope(ctx.engine) as session:
        if session.exec(select(CallbackRequest).where(CallbackRequest.call_sid == ctx.call_sid)).first():
            return True
        caller = _caller(session, ctx.caller, ctx.language)
        callback = CallbackRequest(phone=ctx.caller, caller_id=caller.id, language=ctx.language, reason=reason,
                                   call_sid=ctx.call_sid)  # fmt: skip
        session.add(callback)
        session.flush()
        session.add(AuditEvent(actor="ivr", action="callback.requested", entity="callback_request",
                               entity_id=callback.id, reason=reason))  # fmt: skip
    return True


def remember_language(ctx: CallContext) -> None:
    """A returning caller is greeted in the language they chose last time."""
    if ctx.caller is None:
        return
    with session_scope(ctx.engine) as session:
        caller = _caller(session, ctx.caller, ctx.language)
        caller.language, caller.last_seen_at = ctx.language, utcnow()
        session.add(caller)


def known_language(engine: sa.Engine, phone: str | None) -> str | None:
    if phone is None:
        return None
    with Session(engine) as session:
        return session.exec(select(Caller.language).where(Caller.phone == phone)).first()


def _enqueue(ctx: CallContext, name: QueueName, func: Callable[..., object], *args: object, job_id: str,
             **options: object) -> None:  # fmt: skip
    """Queue a job after the commit; if Redis refuses, the stored row waits for the sweeper."""
    try:
        queue(ctx.redis, name).enqueue(func, *args, job_id=job_id, **options)
    except redis.RedisError:
        log.exception("could not queue %s for %s; it stays pending in the database", func.__name__, job_id)


HANDLERS: dict[str, Handler] = {
    "lookup_pincode": lookup_pincode,
    "create_request": create_request,
    "find_open_requests": find_open_requests,
    "find_request": find_request,
    "agents_available": agents_available,
    "request_callback": request_callback,
}
