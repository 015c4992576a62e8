"""A request comes in, from the phone line, an agent's console or another system: stored with its
caller, audited, and its confirmation SMS recorded in the same transaction (sent after the commit)."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from sqlmodel import Session, col

from core import numbers, phones, pincodes, slots
from core.settings import Settings
from core.slots import Slot
from dispatch import enqueue, messages, retention
from storage import audit
from storage.audit import AuditAction
from storage.db import insert, upsert
from storage.models import (
    AuditEvent,
    Caller,
    CallLog,
    Channel,
    Direction,
    RequestStatus,
    ServiceRequest,
)

log = logging.getLogger(__name__)
MAX_NUMBER_DRAWS = 20
# Built once, as every filing asks them: building a statement takes longer than running it.
_NUMBER_TAKEN = sa.select(col(ServiceRequest.id)).where(
    col(ServiceRequest.number) == sa.bindparam("number", type_=sa.String)
)
_CALLER_ID = sa.select(col(Caller.id)).where(col(Caller.phone) == sa.bindparam("phone", type_=sa.String))
_SAME_KEY = sa.select(
    col(ServiceRequest.id),
    col(ServiceRequest.number),
    col(ServiceRequest.idempotency_digest),
    col(ServiceRequest.slot_starts_at),
    col(ServiceRequest.slot_ends_at),
).where(col(ServiceRequest.idempotency_key) == sa.bindparam("key", type_=sa.String))
_INSERT_CALLER = sa.insert(Caller).returning(col(Caller.id))
_INSERT_AUDIT = sa.insert(AuditEvent)


@dataclass(frozen=True)
class Intake:
    """What the request is and where; who asks for it is the caller's phone (None when withheld)."""

    service: str
    place: pincodes.Place
    phone: str | None
    language: str
    channel: Channel
    actor: str
    filed_at: datetime  # by the filing channel's clock
    idempotency_key: str | None = None
    idempotency_digest: str | None = None  # of what the key files: the same key for another request is refused
    address_note: str | None = None
    preferred_time: str | None = None
    slot: Slot | None = None  # the visit's booked slot; None: as soon as a worker can come
    description: str | None = None
    contact_name: str | None = None
    filed_by: str | None = None  # 'api:<client>': the system that filed it, which may follow it
    detail: tuple[tuple[str, str], ...] = ()


class KeyReused(Exception):
    """The idempotency key filed another request before: this one is not that one, nor filed."""


@dataclass(frozen=True)
class Filed:
    """A request as filed: `created` is False when its idempotency key had filed it before. What the
    filer tells at once; whoever shows the whole request reads it by `id`."""

    id: int
    number: str
    slot_starts_at: datetime | None
    slot_ends_at: datetime | None
    sms_id: int | None  # its confirmation SMS, when filed now and the phone can get one
    created: bool


def new_request(connection: sa.Connection, settings: Settings, intake: Intake) -> Filed:
    """Store the request, its audit event, the call that filed it and its confirmation SMS in the
    connection's transaction. Core statements, no ORM objects: on the phone this is the turn a caller
    waits on, and building and flushing three table models cost more than the statements' round trips."""
    caller_id = caller_id_for(connection, intake.phone, intake.language, settings.privacy_key) if intake.phone else None
    place, slot = intake.place, intake.slot
    starts_at, ends_at = (slot.starts_at, slot.ends_at) if slot else (None, None)
    values = {
        "idempotency_key": intake.idempotency_key,
        "idempotency_digest": intake.idempotency_digest,
        "service_code": intake.service,
        "pincode": place.pincode,
        "district": place.district,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "address_note": intake.address_note,
        "preferred_time": intake.preferred_time,
        "slot_starts_at": starts_at,
        "slot_ends_at": ends_at,
        "description": intake.description,
        "contact_name": intake.contact_name,
        "filed_by": intake.filed_by,
        "caller_id": caller_id,
        "language": intake.language,
        "channel": intake.channel,
        "created_at": intake.filed_at,
    }
    request_id, number = insert_request(connection, values)
    row = audit.row(
        AuditAction.REQUEST_CREATED,
        actor=intake.actor,
        entity="service_request",
        entity_id=request_id,
        to_status=RequestStatus.NEW.value,
        detail=dict(intake.detail),
    )
    connection.execute(_INSERT_AUDIT, row)
    call_sid = dict(intake.detail).get("call_sid")
    if call_sid:
        _log_the_call(connection, call_sid, intake, request_id)
    filed = Filed(request_id, number, starts_at, ends_at, sms_id=None, created=True)
    if intake.phone is None or phones.indian_mobile(intake.phone) is None:
        return filed
    said = confirmation_values(settings, intake, filed)
    sms_id = messages.record_outbound(
        connection, settings, intake.phone, "request_created", intake.language, said, request_id=request_id
    )
    return dataclasses.replace(filed, sms_id=sms_id)


def _log_the_call(connection: sa.Connection, call_sid: str, intake: Intake, request_id: int) -> None:
    """The call that files a request is on the call log from the same commit. Its status callback,
    which writes the rest of the log, may never come (a web worker killed as it arrived; the platform
    does not send it again), and the request would be a phone request without its call."""
    values: dict[str, object] = {
        "call_sid": call_sid,
        "direction": Direction.INBOUND.value,
        "from_number": intake.phone or "anonymous",  # as the status callback logs a withheld number
        "status": "in-progress",
        "outcome": "request_created",
        "language": intake.language,
        "path": [],
        "request_id": request_id,
        "started_at": intake.filed_at,
    }
    upsert(connection, CallLog, values, key="call_sid", update=("outcome", "request_id"))


def file_request(engine: sa.Engine, settings: Settings, intake: Intake) -> Filed:
    """Store the request once per idempotency key (a form sent twice, a client's retry), committed.
    The key is unique in the table, so a first filing does not look for it first: a key filed before
    fails the insert, and the second try finds its request."""
    try:
        return _file(engine, settings, intake, look_first=False)
    except sa.exc.IntegrityError:  # the key filed before (or at the same moment), or a first-time caller added twice
        return _file(engine, settings, intake, look_first=True)


def _file(engine: sa.Engine, settings: Settings, intake: Intake, *, look_first: bool) -> Filed:
    with engine.begin() as connection:
        key = intake.idempotency_key
        found = connection.execute(_SAME_KEY, {"key": key}).first() if key and look_first else None
        if found is not None:
            if intake.idempotency_digest and found.idempotency_digest not in (None, intake.idempotency_digest):
                raise KeyReused(key)
            return Filed(found.id, found.number, found.slot_starts_at, found.slot_ends_at, sms_id=None, created=False)
        return new_request(connection, settings, intake)


def queue_follow_ups(connection: redis.Redis, filed: Filed) -> None:
    """After the commit: a request filed now (not found by its key) is texted and dispatched."""
    if filed.created:
        enqueue.new_request(connection, filed.id, filed.sms_id)


def confirmation_values(settings: Settings, intake: Intake, filed: Filed) -> dict[str, str]:
    """What the confirmation SMS says: the request's number, its service and when the visit is (its
    slot, or as soon as possible)."""
    service = settings.service(intake.service).name(intake.language)
    when = slots.when(settings, filed.slot_starts_at, filed.slot_ends_at, intake.language, intake.filed_at)
    return {"number": filed.number, "service": service, "slot": when}


def insert_request(
    connection: sa.Connection, values: Mapping[str, object], draw: Callable[[], str] = numbers.new_request_number
) -> tuple[int, str]:
    """The request inserted under a request number no other has: each drawn number is tried by the
    insert itself, which does nothing where the number is taken (one round trip a draw, not two)."""
    statement = _insert_request(connection.dialect.name)
    for _ in range(MAX_NUMBER_DRAWS):
        number = draw()
        request_id = connection.execute(statement, {**values, "number": number}).scalar()
        if request_id is not None:
            return request_id, number
    raise RuntimeError(f"no free request number found in {MAX_NUMBER_DRAWS} draws")


@functools.cache
def _insert_request(dialect: str) -> sa.Executable:
    """Built once for each database: INSERT … ON CONFLICT (number) DO NOTHING RETURNING id. A clash
    of idempotency keys still fails the insert, as `file_request` expects."""
    statement = insert(dialect, ServiceRequest)
    return statement.on_conflict_do_nothing(index_elements=["number"]).returning(col(ServiceRequest.id))


def unused_number(session: Session) -> str:
    """A request number no request has yet, for a request built as a table model (a rework's)."""
    for _ in range(MAX_NUMBER_DRAWS):
        number = numbers.new_request_number()
        if session.scalar(_NUMBER_TAKEN, {"number": number}) is None:
            return number
    raise RuntimeError(f"no free request number found in {MAX_NUMBER_DRAWS} draws")


def caller_id_for(
    connection: sa.Connection | Session, phone: str, language: str, privacy_key: str | None = None
) -> int:
    """The id of the citizen with this number, added the first time they are seen (one whose number
    was erased is known again by its hash)."""
    retention.returning_caller(connection, phone, privacy_key)
    known = connection.scalar(_CALLER_ID, {"phone": phone})
    if known is not None:
        return known
    added = connection.scalar(_INSERT_CALLER, {"phone": phone, "language": language})
    assert added is not None
    return int(added)
