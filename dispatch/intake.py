"""A request comes in, from the phone line, an agent's console or another system: stored with its
caller, audited, and its confirmation SMS recorded in the same commit (sent after it): on PostgreSQL
one statement, on SQLite one transaction of several."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col

from core import numbers, phones, pincodes, slots
from core.settings import Settings
from core.slots import Slot
from dispatch import enqueue, messages, retention
from storage import audit
from storage.audit import AuditAction
from storage.db import autocommitted, insert, rows_of, upsert
from storage.models import (
    AuditEvent,
    Caller,
    CallLog,
    Channel,
    Direction,
    RequestStatus,
    ServiceRequest,
    SmsDelivery,
    SmsLog,
    utcnow,
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
CONFIRMATION = "request_created"  # the SMS that gives a request's number
_REQUEST_COLUMNS = (
    "idempotency_key",
    "idempotency_digest",
    "service_code",
    "pincode",
    "district",
    "latitude",
    "longitude",
    "address_note",
    "preferred_time",
    "slot_starts_at",
    "slot_ends_at",
    "description",
    "contact_name",
    "filed_by",
    "language",
    "channel",
    "created_at",
)
_AUDIT_COLUMNS = ("at", "actor", "action", "entity", "entity_id", "from_status", "to_status", "reason", "detail")
_CALL_COLUMNS = (
    "call_sid",
    "direction",
    "from_number",
    "status",
    "outcome",
    "language",
    "path",
    "request_id",
    "started_at",
)
_CALL_FILED = ("outcome", "request_id")  # what a filing writes over on a call already logged


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


def new_request(
    connection: sa.Connection, settings: Settings, intake: Intake, draw: Callable[[], str] = numbers.new_request_number
) -> Filed:
    """Store the request, its audit event, the call that filed it and its confirmation SMS in the
    connection's transaction, statement by statement: SQLite's filing (PostgreSQL's is `_filing`, one
    statement). Core statements, no ORM objects: on the phone this is the turn a caller waits on, and
    building and flushing three table models cost more than the statements' round trips."""
    caller_id = caller_id_for(connection, intake.phone, intake.language, settings.privacy_key) if intake.phone else None
    values = _request_columns(intake)
    request_id, number = insert_request(connection, {**values, "caller_id": caller_id}, draw)
    connection.execute(_INSERT_AUDIT, _created_event(intake, request_id))
    call_sid = dict(intake.detail).get("call_sid")
    if call_sid:
        # The call that files a request is on the call log from the same commit. Its status callback,
        # which writes the rest of the log, may never come (a web worker killed as it arrived; the
        # platform does not send it again), and the request would be a phone request without its call.
        upsert(connection, CallLog, _call_columns(call_sid, intake, request_id), key="call_sid", update=_CALL_FILED)
    filed = Filed(request_id, number, values["slot_starts_at"], values["slot_ends_at"], sms_id=None, created=True)
    to = phones.indian_mobile(intake.phone) if intake.phone else None
    if to is None:
        return filed
    said = confirmation_values(settings, intake, filed)
    sms_id = messages.record_outbound(
        connection, settings, to, CONFIRMATION, intake.language, said, request_id=request_id
    )
    return dataclasses.replace(filed, sms_id=sms_id)


def _request_columns(intake: Intake) -> dict[str, Any]:
    """The request's columns as filed, but its number and its caller."""
    place, slot = intake.place, intake.slot
    starts_at, ends_at = (slot.starts_at, slot.ends_at) if slot else (None, None)
    return {
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
        "language": intake.language,
        "channel": intake.channel,
        "created_at": intake.filed_at,
    }


def _created_event(intake: Intake, request_id: int | None) -> dict[str, Any]:
    return audit.row(
        AuditAction.REQUEST_CREATED,
        actor=intake.actor,
        entity="service_request",
        entity_id=request_id,
        to_status=RequestStatus.NEW.value,
        detail=dict(intake.detail),
    )


def _call_columns(call_sid: str, intake: Intake, request_id: int | None) -> dict[str, Any]:
    """The call that filed the request, on the call log until its status callback writes the rest."""
    return {
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


def file_request(
    engine: sa.Engine, settings: Settings, intake: Intake, draw: Callable[[], str] = numbers.new_request_number
) -> Filed:
    """Store the request once per idempotency key (a form sent twice, a client's retry), committed.
    The key is unique in the table, so a first filing does not look for it first: a key filed before
    fails the insert, and the second try finds its request. `draw` gives the request numbers tried."""
    file = _file_at_once if engine.dialect.name == "postgresql" else _file
    try:
        return file(engine, settings, intake, draw, look_first=False)
    except sa.exc.IntegrityError:  # the key filed before (or at the same moment), or a first-time caller added twice
        return file(engine, settings, intake, draw, look_first=True)


def _file(engine: sa.Engine, settings: Settings, intake: Intake, draw: Callable[[], str], *, look_first: bool) -> Filed:
    """A filing in one transaction, statement by statement (SQLite)."""
    with engine.begin() as connection:
        found = _same_key(connection, intake) if look_first else None
        return found or new_request(connection, settings, intake, draw)


def _same_key(connection: sa.Connection, intake: Intake) -> Filed | None:
    """The request the intake's idempotency key filed before, if any; its reuse for another is refused."""
    key = intake.idempotency_key
    found = connection.execute(_SAME_KEY, {"key": key}).first() if key else None
    if found is None:
        return None
    if intake.idempotency_digest and found.idempotency_digest not in (None, intake.idempotency_digest):
        raise KeyReused(key)
    return Filed(found.id, found.number, found.slot_starts_at, found.slot_ends_at, sms_id=None, created=False)


def _file_at_once(
    engine: sa.Engine, settings: Settings, intake: Intake, draw: Callable[[], str], *, look_first: bool
) -> Filed:
    """PostgreSQL: the whole filing is one statement (`_filing`), which commits as it runs: no BEGIN
    and COMMIT round trips, and one round trip for its five writes, not one each (the booking is the
    turn a caller waits on longest). A number another request has files nothing (a first-time caller's
    row stays, as it would in the transaction of the statements one by one): the next draw is tried."""
    with autocommitted(engine) as connection:
        found = _same_key(connection, intake) if look_first else None
        if found is not None:
            return found
        values = _filing_values(settings, intake)
        to = phones.indian_mobile(intake.phone) if intake.phone else None
        starts_at, ends_at = values["r_slot_starts_at"], values["r_slot_ends_at"]
        for _ in range(MAX_NUMBER_DRAWS):
            filed = Filed(0, draw(), starts_at, ends_at, sms_id=None, created=True)
            values["r_number"] = filed.number
            if to is not None:
                values |= _confirmation(settings, intake, filed, to)
            filing = rows_of(connection, _filing(), values)
            if filing:  # else another request has the number
                [(request_id, sms_id)] = filing
                return dataclasses.replace(filed, id=request_id, sms_id=sms_id)
    raise RuntimeError(f"no free request number found in {MAX_NUMBER_DRAWS} draws")


def _confirmation(settings: Settings, intake: Intake, filed: Filed, to: str) -> dict[str, Any]:
    """`_filing`'s parameters of the confirmation SMS, its columns as every SMS is recorded (its request
    is the one the statement files)."""
    said = confirmation_values(settings, intake, filed)
    row = messages.outbound_row(settings, to, CONFIRMATION, intake.language, said, request_id=None, worker_id=None)
    return _prefixed("s_", row)


def _filing_values(settings: Settings, intake: Intake) -> dict[str, Any]:
    """`_filing`'s parameters but the number and the SMS's text, drawn and written for each try."""
    now = utcnow()
    call_sid = dict(intake.detail).get("call_sid")
    hashed = (
        retention.erased_form(intake.phone, settings.privacy_key) if intake.phone and settings.privacy_key else None
    )
    return {
        "caller_phone": intake.phone,
        "caller_hashed": hashed,
        "caller_language": intake.language,
        "caller_at": now,
        **_prefixed("r_", _request_columns(intake)),
        **_prefixed("a_", _created_event(intake, request_id=None)),
        **_prefixed("c_", _call_columns(call_sid or "", intake, request_id=None)),
        "c_wanted": call_sid is not None,
        "r_status": RequestStatus.NEW,
        "r_updated_at": now,
        # No SMS unless a draw records one (`s_to_number` stays None for a number that cannot get one)
        **_prefixed("s_", {"to_number": None, "body": "", "template": CONFIRMATION, "status": SmsDelivery.PENDING}),
        "s_direction": Direction.OUTBOUND,
        "s_attempts": 0,
        "s_created_at": now,
        "s_updated_at": now,
    }


def _prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in values.items()}


@functools.cache
def _filing() -> sa.Select[Any]:
    """The filing on PostgreSQL, one statement whose data-modifying WITH queries all run (each once,
    on one snapshot) and commit or fail together: the caller given back their erased number
    (`retention.returning_caller`), or found, or added; the request, under `r_number` unless another
    request has it (then nothing hangs on it, and no row comes back); its audit event; the call that
    filed it, when `c_wanted`; its confirmation SMS, when `s_to_number` is a mobile. One row: the
    request's id and the SMS's (or NULL). A reused idempotency key, or a first-time caller added
    twice at once, fails the statement with an IntegrityError, as the statements one by one would.
    Built once: building it takes longer than running it."""
    tables: list[sa.Table] = [
        model.__table__  # type: ignore[union-attr]
        for model in (Caller, ServiceRequest, AuditEvent, CallLog, SmsLog)
    ]
    caller, request, event, call, text = tables

    def given(table: sa.Table, prefix: str, names: Iterable[str]) -> list[sa.BindParameter[Any]]:
        return [sa.bindparam(prefix + name, type_=table.c[name].type) for name in names]

    phone, hashed = (sa.bindparam(name, type_=caller.c.phone.type) for name in ("caller_phone", "caller_hashed"))
    language = sa.bindparam("caller_language", type_=caller.c.language.type)
    now = sa.bindparam("caller_at", type_=caller.c.created_at.type)
    given_back = retention.number_given_back(phone, hashed).returning(caller.c.id).cte("given_back")
    found = sa.select(caller.c.id).where(caller.c.phone == phone).cte("found")
    added = (
        sa.insert(caller)
        .from_select(
            ["phone", "language", "created_at", "last_seen_at"],
            sa.select(phone, language, now, now).where(
                phone.is_not(None), ~sa.exists(found.select()), ~sa.exists(given_back.select())
            ),
            include_defaults=False,
        )
        .returning(caller.c.id)
        .cte("added")
    )
    who = sa.union_all(given_back.select(), found.select(), added.select()).subquery("who")
    columns = [*_REQUEST_COLUMNS, "number", "status", "updated_at"]
    filed = (
        postgresql.insert(request)
        .from_select(
            [*columns, "caller_id"],
            sa.select(*given(request, "r_", columns), sa.select(who.c.id).limit(1).scalar_subquery()),
            include_defaults=False,
        )
        .on_conflict_do_nothing(index_elements=["number"])
        .returning(request.c.id)
        .cte("filed")
    )
    names = [name for name in _AUDIT_COLUMNS if name != "entity_id"]
    audited = sa.insert(event).from_select(
        [*names, "entity_id"], sa.select(*given(event, "a_", names), filed.c.id), include_defaults=False
    )
    names = [name for name in _CALL_COLUMNS if name != "request_id"]
    logged = postgresql.insert(call).from_select(
        [*names, "request_id"],
        sa.select(*given(call, "c_", names), filed.c.id).where(sa.bindparam("c_wanted", type_=sa.Boolean)),
        include_defaults=False,
    )
    logged = logged.on_conflict_do_update(
        index_elements=["call_sid"], set_={name: logged.excluded[name] for name in _CALL_FILED}
    )
    names = ["to_number", "body", "template", "status", "direction", "attempts", "created_at", "updated_at"]
    sent = given(text, "s_", names)
    texted = (
        sa.insert(text)
        .from_select(
            [*names, "request_id"],
            sa.select(*sent, filed.c.id).where(sent[0].is_not(None)),
            include_defaults=False,
        )
        .returning(text.c.id)
        .cte("texted")
    )
    sms_id = sa.select(texted.c.id).scalar_subquery().label("sms_id")
    return sa.select(filed.c.id, sms_id).add_cte(audited.cte("audited"), logged.cte("logged"))


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
