"""Personal data kept no longer than `privacy.retention` in config.yaml says (DPDP Act 2023 s.8(7)).

One citizen's number is erased the same way everywhere (`erase_number`: the nightly sweep and an
erasure the person asked for share it): the number becomes its keyed hash in every table, so a
caller who rings again is still known as a repeat caller (`returning_caller`), while their names and
free text, and the SMS to and from them, are blanked. Redis is cleared of every trace of the number.

What staff write about a citizen's call (an agent's wrap-up note, a supervisor's review comments, the
notes of a callback and its tries) is blanked with the citizen (`blank_notes_about`), and by the
nightly sweep `privacy.retention.call_notes` days after the call, or after the callback closed
(`blank_notes_before`). Codes, scores and outcomes stay: they name no one, and the reports count them.

Before the sweep erases a citizen's number for lapsed purpose it tells them by SMS, in their language,
`privacy.erasure_notice_hours` ahead (DPDP Rules 2025: 48 hours), and waits that long after the
notice. That SMS is no contact: it does not keep the number alive. A citizen who cannot be told (no
Indian mobile, no caller's row) is erased on time, without a notice.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import phones
from core.exceptions import ConfigError
from core.settings import Settings
from dispatch import calllogs, notice
from storage import audit
from storage.audit import AuditAction
from storage.models import (
    AgentCall,
    AuditEvent,
    CallbackAttempt,
    CallbackRequest,
    CallbackStatus,
    Caller,
    CallLog,
    CallReview,
    Provider,
    Recording,
    RecordingKind,
    RequestStatus,
    ServiceRequest,
    SmsHandling,
    SmsLog,
    User,
    Worker,
)
from telephony import recording_store
from telephony.port import GatewayError

log = logging.getLogger(__name__)
OPEN = (RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED)
UNHANDLED_SMS = (SmsHandling.RECEIVED.value, SmsHandling.HANDLING.value)
REDIS_PATTERNS = ("sewamitra:*", "rq:job:*")  # the helpline's keys and RQ's jobs (their arguments)
BATCH = 500
NIGHT = timedelta(days=1)  # between two runs of the nightly sweep (dispatch.schedule.RETENTION_CRON)
FREE_TEXT = ("contact_name", "description", "address_note", "preferred_time")
# Audit events whose reason is the note an agent wrote on a callback (console.callers, console.queue).
NOTED_ON_CALLBACKS = (AuditAction.CALLBACK_SCHEDULED.value, AuditAction.CALLBACK_HANDLED.value)
COMMENT = "comment"  # a review's comment on one item of the scorecard (CallReview.scores)


@dataclass
class Counts:
    """What one run erased, counted: the audit event holds these and nothing else."""

    numbers: int = 0
    requests_blanked: int = 0
    sms_bodies_blanked: int = 0
    call_logs_deleted: int = 0
    audit_events_deleted: int = 0
    audit_events_scrubbed: int = 0
    recordings_deleted: int = 0
    wrap_up_notes_blanked: int = 0  # agent calls whose wrap-up note went
    review_comments_blanked: int = 0  # quality reviews whose comments went
    callback_notes_blanked: int = 0  # callbacks and tries whose note went
    redis_entries_removed: int = 0
    erasure_notices: int = 0  # citizens told their number goes soon
    numbers_awaiting_notice: int = 0  # past their time, their notice not yet `erasure_notice_hours` old
    numbers_erased: list[str] = field(default_factory=list, repr=False)

    def as_detail(self) -> dict[str, int]:
        return {name: value for name, value in vars(self).items() if isinstance(value, int)}


def key_of(settings: Settings) -> str:
    """The key of the hash an erased number becomes; erasing without one would be undoable by anyone."""
    if not settings.privacy_key:
        raise ConfigError("SEWAMITRA_PRIVACY_KEY is not set: phone numbers cannot be erased without it")
    return settings.privacy_key


def normal(number: str) -> str:
    """The form a number is hashed in: E.164 when it is one, else as stored."""
    return phones.to_e164(number) or number


def erased_form(number: str, key: str) -> str:
    """What the number becomes where it is erased: the keyed hash of its normal form."""
    return phones.pseudonym(normal(number), key)


def searchable(number: str) -> str:
    """What every written form of the number holds: its last ten digits (E.164, national, %2B-encoded)."""
    digits = "".join(char for char in number if char.isdigit())
    return digits[-10:]


# -- one citizen ----------------------------------------------------------------------------------


def erase_number(session: Session, number: str, key: str, counts: Counts) -> None:
    """Erase a citizen's number from every table: the hash in its place, their free text and SMS blanked."""
    hashed = erased_form(number, key)
    forms = sorted({number, normal(number), searchable(number)})
    _erase_caller(session, forms, hashed, counts)
    blank_notes_about(session, [*forms, hashed], counts)  # while the number still finds their calls
    session.execute(sa.update(CallbackRequest).where(col(CallbackRequest.phone).in_(forms)).values(phone=hashed))
    for column in ("from_number", "to_number"):
        session.execute(sa.update(CallLog).where(col(getattr(CallLog, column)).in_(forms)).values({column: hashed}))
        result = session.execute(
            sa.update(SmsLog).where(col(getattr(SmsLog, column)).in_(forms)).values({column: hashed, "body": ""})
        )
        counts.sms_bodies_blanked += result.rowcount  # type: ignore[attr-defined]
    counts.audit_events_scrubbed += _scrub_audit(session, searchable(number))
    counts.numbers += 1
    counts.numbers_erased.append(number)


def _erase_caller(session: Session, forms: list[str], hashed: str, counts: Counts) -> None:
    """The caller's row keeps its id (their requests stay theirs) under the hash; their requests' free text goes."""
    callers = list(session.exec(select(Caller).where(col(Caller.phone).in_(forms))).all())
    if not callers:
        return
    already = session.exec(select(Caller).where(Caller.phone == hashed)).first()
    for caller in callers:
        if already is not None:  # erased before, then seen anew without being recognised: one caller again
            for table in (ServiceRequest, CallbackRequest):
                session.execute(sa.update(table).where(col(table.caller_id) == caller.id).values(caller_id=already.id))
            session.delete(caller)
            session.flush()
        else:
            caller.phone = hashed
            session.add(caller)
            session.flush()
            already = caller
    assert already is not None
    result = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.caller_id) == already.id, _has_free_text())
        .values(dict.fromkeys(FREE_TEXT))
    )
    counts.requests_blanked += result.rowcount  # type: ignore[attr-defined]


def _has_free_text() -> sa.ColumnElement[bool]:
    return sa.or_(*(col(getattr(ServiceRequest, name)).is_not(None) for name in FREE_TEXT))


def _scrub_audit(session: Session, digits: str) -> int:
    """Audit events whose reason or detail happen to hold the number keep what happened, not the number."""
    if len(digits) < 10:
        return 0
    pattern = f"%{digits}%"
    found = session.exec(
        select(AuditEvent).where(
            sa.or_(col(AuditEvent.reason).like(pattern), sa.cast(col(AuditEvent.detail), sa.Text).like(pattern))
        )
    ).all()
    for event in found:
        if event.reason and digits in event.reason:
            event.reason = None
        if digits in json.dumps(event.detail):
            event.detail = {"erased": "personal data"}
        session.add(event)
    return len(found)


def returning_caller(connection: sa.Connection | Session, number: str, key: str | None) -> None:
    """A caller whose number was erased rings again: their row gets the number back, so they are the
    same caller (a repeat caller) with the same history, not a new one."""
    if not key:
        return
    connection.execute(_NUMBER_GIVEN_BACK, {"hashed": erased_form(number, key), "number": number})


def number_given_back(number: sa.ColumnElement[Any], erased: sa.ColumnElement[Any], **also: Any) -> sa.Update:
    """The row that holds `erased`, the number's erased form, given `number` back (and the values of
    `also`), unless another row has the number again: the one rule of a returning caller, for the
    statements that apply it (`returning_caller`'s, and the filing's and a first call's on PostgreSQL).
    On the table: no ORM session to synchronise."""
    table: sa.Table = Caller.__table__  # type: ignore[attr-defined]
    taken = sa.exists().where(table.c.phone == number)
    return sa.update(table).where(table.c.phone == erased, ~taken).values(phone=number, **also)


# Built once: every citizen's call and booking runs it where numbers are erased, and building it took
# longer than running it.
_NUMBER_GIVEN_BACK = number_given_back(sa.bindparam("number", type_=sa.String), sa.bindparam("hashed", type_=sa.String))


# -- what staff wrote about a call ------------------------------------------------------------------


def blank_notes_about(session: Session, numbers: list[str], counts: Counts) -> None:
    """Staff's notes about a citizen's calls and callbacks blanked, found by the number's forms (its
    hash among them: what was written since an earlier erasure is about them too)."""
    calls = sa.select(col(CallLog.call_sid)).where(
        sa.or_(col(CallLog.from_number).in_(numbers), col(CallLog.to_number).in_(numbers))
    )
    _blank_call_notes(session, col(AgentCall.call_sid).in_(calls), counts)
    _blank_callback_notes(session, col(CallbackRequest.phone).in_(numbers), counts)


def blank_notes_before(session: Session, before: datetime, counts: Counts) -> None:
    """Staff's notes past `privacy.retention.call_notes`: about a call answered before `before`, or a
    callback closed before it (an open callback's notes still guide its next try)."""
    _blank_call_notes(session, col(AgentCall.answered_at) < before, counts)
    closed_at = sa.func.coalesce(col(CallbackRequest.handled_at), col(CallbackRequest.created_at))
    closed = sa.and_(col(CallbackRequest.status) != CallbackStatus.PENDING, closed_at < before)
    _blank_callback_notes(session, closed, counts)


def _blank_call_notes(session: Session, calls: sa.ColumnElement[bool], counts: Counts) -> None:
    """The wrap-up notes of these agent calls, and the comments of their quality reviews (a review
    loses its comment keys, so that a review blanked once is not read again)."""
    result = session.execute(
        sa.update(AgentCall).where(calls, col(AgentCall.disposition_note).is_not(None)).values(disposition_note=None)
    )
    counts.wrap_up_notes_blanked += int(result.rowcount)  # type: ignore[attr-defined]
    commented = select(CallReview).where(
        col(CallReview.agent_call_id).in_(sa.select(col(AgentCall.id)).where(calls)),
        sa.cast(col(CallReview.scores), sa.Text).like(f'%"{COMMENT}"%'),
    )
    for review in session.exec(commented).all():
        items = {code: dict(score) for code, score in review.scores.items() if isinstance(score, dict)}
        said = any(score.pop(COMMENT, None) for score in items.values())
        review.scores = items
        session.add(review)
        counts.review_comments_blanked += said


def _blank_callback_notes(session: Session, callbacks: sa.ColumnElement[bool], counts: Counts) -> None:
    """The notes of these callbacks and of their tries, and the audit trail's copies of an agent's
    note (its `reason`; what was done, by whom and when, stays)."""
    ids = sa.select(col(CallbackRequest.id)).where(callbacks)
    tries = session.execute(
        sa.update(CallbackAttempt)
        .where(col(CallbackAttempt.callback_id).in_(ids), col(CallbackAttempt.note).is_not(None))
        .values(note=None)
    )
    own = session.execute(
        sa.update(CallbackRequest).where(callbacks, col(CallbackRequest.note).is_not(None)).values(note=None)
    )
    counts.callback_notes_blanked += int(tries.rowcount) + int(own.rowcount)  # type: ignore[attr-defined]
    copies = session.execute(
        sa.update(AuditEvent)
        .where(
            col(AuditEvent.entity) == "callback_request",
            col(AuditEvent.entity_id).in_(ids),
            col(AuditEvent.action).in_(NOTED_ON_CALLBACKS),
            col(AuditEvent.reason).is_not(None),
        )
        .values(reason=None)
    )
    counts.audit_events_scrubbed += int(copies.rowcount)  # type: ignore[attr-defined]


# -- Redis ----------------------------------------------------------------------------------------


def erase_from_redis(connection: redis.Redis, numbers: Iterable[str]) -> int:
    """Every Redis key, hash field or member that mentions one of `numbers`, removed; what else a
    shared key holds (other callers in the queue) stays."""
    needles = [searchable(number).encode() for number in numbers if len(searchable(number)) >= 10]
    if not needles:
        return 0
    removed = 0
    for pattern in REDIS_PATTERNS:
        for name in connection.scan_iter(match=pattern, count=1000):
            removed += _erase_in_key(connection, name, needles)
    return removed


def _mentions(raw: Any, needles: list[bytes]) -> bool:
    value = raw if isinstance(raw, bytes) else str(raw).encode()
    return any(needle in value for needle in needles) or any(needle in _inflated(value) for needle in needles)


def _inflated(value: bytes) -> bytes:
    """RQ keeps a job's arguments zlib-compressed."""
    try:
        return zlib.decompress(value)
    except zlib.error:
        return b""


def _erase_in_key(connection: redis.Redis, name: bytes, needles: list[bytes]) -> int:
    kind = connection.type(name)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "string":
        value = connection.get(name)
        return int(connection.delete(name)) if value is not None and _mentions(value, needles) else 0
    if kind == "hash":
        if _mentions(name, needles) or (name.startswith(b"rq:job:") and _hash_mentions(connection, name, needles)):
            return int(connection.delete(name))
        fields = [k for k, v in connection.hgetall(name).items() if _mentions(k, needles) or _mentions(v, needles)]
        return int(connection.hdel(name, *fields)) if fields else 0
    members: list[Any]
    if kind == "set":
        members = [m for m in connection.smembers(name) if _mentions(m, needles)]
        return int(connection.srem(name, *members)) if members else 0
    if kind == "zset":
        members = [m for m in connection.zrange(name, 0, -1) if _mentions(m, needles)]
        return int(connection.zrem(name, *members)) if members else 0
    if kind == "list":
        members = [m for m in connection.lrange(name, 0, -1) if _mentions(m, needles)]
        return sum(int(connection.lrem(name, 0, m)) for m in members)
    return 0


def _hash_mentions(connection: redis.Redis, name: bytes, needles: list[bytes]) -> bool:
    return any(_mentions(k, needles) or _mentions(v, needles) for k, v in connection.hgetall(name).items())


# -- the nightly sweep ----------------------------------------------------------------------------


def sweep(engine: sa.Engine, connection: redis.Redis, settings: Settings, moment: datetime) -> Counts:
    """Tell the citizens whose number goes soon; then erase everything past its time, and Redis's
    traces of the numbers, in one transaction with its audit event."""
    key = key_of(settings)
    days = settings.privacy.retention
    counts = Counts()
    citizens_before = moment - timedelta(days=days.citizens)
    counts.erasure_notices = tell_before_erasure(engine, connection, settings, moment)
    calllogs.write_due(engine, connection)  # the logs still waiting in Redis, hashed with the rest
    with Session(engine) as session, session.begin():
        for number in erasable_numbers(session, settings, citizens_before, moment, counts):
            erase_number(session, number, key, counts)
        counts.requests_blanked += _blank_anonymous_requests(session, citizens_before)
        counts.sms_bodies_blanked += _blank_sms(session, moment - timedelta(days=days.sms_bodies))
        blank_notes_before(session, moment - timedelta(days=days.call_notes), counts)
        counts.call_logs_deleted = _delete_before(session, CallLog, CallLog.started_at, moment, days.call_logs)
        counts.audit_events_deleted = _delete_before(session, AuditEvent, AuditEvent.at, moment, days.audit_events)
        counts.recordings_deleted = erase_recordings_before(
            session, settings, moment - timedelta(days=days.recordings), moment
        )
        # Before the commit, to count it: should the commit fail, the next run erases the numbers again.
        counts.redis_entries_removed = erase_from_redis(connection, counts.numbers_erased)
        audit.record(
            session,
            AuditAction.RETENTION_RUN,
            actor="system",
            entity="retention",
            detail=counts.as_detail(),
        )
    log.info("retention: %s", counts.as_detail())
    return counts


def erase_recordings_before(session: Session, settings: Settings, before: datetime, now: datetime) -> int:
    """Recordings (the spoken address, an officer's call, an agent's call) made before `before`,
    deleted at the platform that keeps them and here; how many."""
    made = select(Recording).where(col(Recording.created_at) < before, col(Recording.erased_at).is_(None))
    return erase_recordings(session, settings, list(session.exec(made).all()), now)


def erase_recordings(session: Session, settings: Settings, recordings: Iterable[Recording], now: datetime) -> int:
    """Each recording deleted at its platform (REST DELETE), then its URL blanked here and the time
    noted. One the platform cannot delete now stays as it is, and the next night's run tries again."""
    erased = 0
    for recording in recordings:
        try:
            recording_store(settings, recording.platform).delete_recording(recording.recording_id)
        except GatewayError as error:
            log.warning("retention: recording %s not deleted at %s: %s", recording.id, recording.platform, error)
            continue
        recording.url = ""
        recording.erased_at = now
        session.add(recording)
        erased += 1
    return erased


# -- the notice before an erasure for lapsed purpose (DPDP Rules 2025) -----------------------------


def tell_before_erasure(engine: sa.Engine, connection: redis.Redis, settings: Settings, moment: datetime) -> int:
    """Citizens whose number goes within `privacy.erasure_notice_hours` and a night, and who were not
    told of this lapse yet, get an SMS saying from when; how many. The night's margin: the sweep runs
    nightly at a moment that drifts by seconds, and a notice a few seconds short of its hours on the
    night its number falls due would hold the erasure back a whole night."""
    hours = settings.privacy.erasure_notice_hours
    if not hours:
        return 0
    erased_from = moment + timedelta(hours=hours)
    with Session(engine) as session:
        falls_due_by = erased_from + NIGHT - timedelta(days=settings.privacy.retention.citizens)
        due = expired_numbers(session, settings, falls_due_by)
        callers = _callers_of(session, due)
        last = last_contact(session, [caller.phone for caller in callers.values()])
    to_tell = sorted(
        {
            caller.id
            for caller in callers.values()
            if caller.id is not None
            and phones.indian_mobile(caller.phone) is not None
            and not told_of_this_lapse(caller.erasure_notice_at, last.get(caller.phone))
        }
    )
    on = erased_from.astimezone(ZoneInfo(settings.call_centre.timezone)).strftime("%d %b %Y")
    sent = [notice.send_erasure_notice(engine, connection, settings, caller_id, on, moment) for caller_id in to_tell]
    return sum(sms_id is not None for sms_id in sent)


def erasable_numbers(
    session: Session, settings: Settings, before: datetime, moment: datetime, counts: Counts
) -> list[str]:
    """Numbers past their time that may go now: their citizen told of this lapse at least
    `erasure_notice_hours` ago, or with no one to tell (no caller's row, no Indian mobile, no notice)."""
    expired = expired_numbers(session, settings, before)
    hours = settings.privacy.erasure_notice_hours
    if not hours:
        return expired
    callers = _callers_of(session, expired)
    last = last_contact(session, [caller.phone for caller in callers.values()])
    told_by = moment - timedelta(hours=hours)
    ready: list[str] = []
    for number in expired:
        caller = callers.get(number)
        if (
            caller is None
            or phones.indian_mobile(caller.phone) is None  # no one to tell
            or notice_served(caller.erasure_notice_at, last.get(caller.phone), told_by)
        ):
            ready.append(number)
        else:
            counts.numbers_awaiting_notice += 1
    return ready


def told_of_this_lapse(notice_at: datetime | None, last_contact: datetime | None) -> bool:
    """A notice counts for the lapse that follows the citizen's last contact: one before it was for an
    earlier lapse, which their contact ended."""
    return notice_at is not None and (last_contact is None or notice_at > last_contact)


def notice_served(notice_at: datetime | None, last_contact: datetime | None, told_by: datetime) -> bool:
    """Told of this lapse, and by `told_by`: the notice's hours have run."""
    return told_of_this_lapse(notice_at, last_contact) and notice_at is not None and notice_at <= told_by


def _callers_of(session: Session, numbers: list[str]) -> dict[str, Caller]:
    """Each number's caller (under the number as written or in E.164), where it has one."""
    found: dict[str, Caller] = {}
    for chunk in _chunks(numbers):
        forms = set(chunk) | {normal(number) for number in chunk}
        by_phone = {c.phone: c for c in session.exec(select(Caller).where(col(Caller.phone).in_(sorted(forms))))}
        for number in chunk:
            caller = by_phone.get(number) or by_phone.get(normal(number))
            if caller is not None:
                found[number] = caller
    return found


def last_contact(session: Session, numbers: Collection[str]) -> dict[str, datetime]:
    """When each number was last heard from or written to, or its request last moved; an erasure
    notice is no contact."""
    last: dict[str, datetime] = {}
    for chunk in _chunks(sorted(set(numbers))):
        queries: list[sa.Select[str, datetime]] = [
            sa.select(number_column, sa.func.max(moment_column))
            .where(number_column.in_(chunk), condition)
            .group_by(number_column)
            for number_column, moment_column, condition in _contacts()
        ]
        queries.append(
            sa.select(col(Caller.phone), sa.func.max(col(ServiceRequest.updated_at)))
            .join(ServiceRequest, col(ServiceRequest.caller_id) == col(Caller.id))
            .where(col(Caller.phone).in_(chunk))
            .group_by(col(Caller.phone))
        )
        for query in queries:
            for number, at in session.execute(query):
                if at is not None and (number not in last or at > last[number]):
                    last[number] = at
    return last


def _contacts() -> list[tuple[Any, Any, sa.ColumnElement[bool]]]:
    """Where a citizen's contact with the helpline is written: (number, when, which rows)."""
    not_a_notice = sa.or_(col(SmsLog.template).is_(None), col(SmsLog.template) != notice.ERASURE_TEMPLATE)
    return [
        (col(Caller.phone), col(Caller.last_seen_at), sa.true()),
        (col(CallbackRequest.phone), col(CallbackRequest.created_at), sa.true()),
        (col(CallLog.from_number), col(CallLog.started_at), sa.true()),
        (col(CallLog.to_number), col(CallLog.started_at), sa.true()),
        (col(SmsLog.from_number), col(SmsLog.created_at), not_a_notice),
        (col(SmsLog.to_number), col(SmsLog.created_at), not_a_notice),
    ]


# -- what is past its time ------------------------------------------------------------------------


def expired_numbers(session: Session, settings: Settings, before: datetime) -> list[str]:
    """Citizens' numbers last seen anywhere before `before`, with no request of theirs still open."""
    candidates = set(_numbers_seen(session, before, recent=False)) - _staff_numbers(session, settings)
    candidates = {n for n in candidates if not phones.is_pseudonym(n) and not phones.is_withheld(n)}
    expired: list[str] = []
    for chunk in _chunks(sorted(candidates)):
        recent = set(_numbers_seen(session, before, recent=True, among=chunk))
        expired += [number for number in chunk if number not in recent]
    return expired


def _numbers_seen(session: Session, before: datetime, *, recent: bool, among: list[str] | None = None) -> Iterator[str]:
    """Numbers in any table's rows made before `before` (or, `recent`, since then, or in an open request)."""
    open_request = sa.exists().where(
        col(ServiceRequest.caller_id) == col(Caller.id),
        sa.or_(col(ServiceRequest.status).in_(OPEN), col(ServiceRequest.updated_at) >= before),
    )
    sources: list[tuple[Any, sa.ColumnElement[bool]]] = []
    for number_column, moment_column, rows in _contacts():
        when = moment_column >= before if recent else moment_column < before
        if recent and number_column is col(Caller.phone):
            when = sa.or_(when, open_request)
        sources.append((number_column, sa.and_(when, rows)))
    for number_column, condition in sources:
        query = sa.select(number_column).where(condition, number_column.is_not(None)).distinct()
        if among is not None:
            query = query.where(number_column.in_(among))
        else:
            query = query.where(sa.not_(number_column.startswith(phones.PSEUDONYM_MARK)))
        for (number,) in session.execute(query):
            yield number


def _staff_numbers(session: Session, settings: Settings) -> set[str]:
    """Numbers that are not citizens': workers', agencies', console users', the helpline's own."""
    own = {settings.helpline_number, settings.twilio.from_number}
    for column in (Worker.phone, Provider.phone, User.phone):
        own |= {number for (number,) in session.execute(sa.select(col(column)).where(col(column).is_not(None)))}
    return {number for number in own if number}


def _blank_anonymous_requests(session: Session, before: datetime) -> int:
    """Requests filed with no caller (another system's, without a phone): their free text goes in time too."""
    result = session.execute(
        sa.update(ServiceRequest)
        .where(
            col(ServiceRequest.caller_id).is_(None),
            col(ServiceRequest.updated_at) < before,
            col(ServiceRequest.status).not_in(OPEN),
            _has_free_text(),
        )
        .values(dict.fromkeys(FREE_TEXT))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _blank_sms(session: Session, before: datetime) -> int:
    result = session.execute(
        sa.update(SmsLog)
        .where(
            col(SmsLog.created_at) < before,
            col(SmsLog.body) != "",
            sa.or_(col(SmsLog.status).is_(None), col(SmsLog.status).not_in(UNHANDLED_SMS)),
        )
        .values(body="")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _delete_before(session: Session, table: type, moment_column: object, moment: datetime, days: int) -> int:
    result = session.execute(sa.delete(table).where(col(moment_column) < moment - timedelta(days=days)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


# -- a person's own request -----------------------------------------------------------------------


class StillServing(Exception):
    """The caller has a request still open: erasing their number now would strand the worker and them."""


def erase_caller(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, caller_id: int, now: datetime
) -> Counts:
    """Erase one citizen everywhere, at their own request (approved by a supervisor), their recordings
    at the platform too (of their requests, and of their calls with agents); the counts only. `now`:
    the caller's clock."""
    key = key_of(settings)
    counts = Counts()
    calllogs.write_due(engine, connection)  # their calls' logs still waiting in Redis, hashed with the rest
    with Session(engine) as session, session.begin():
        caller = session.get(Caller, caller_id)
        if caller is None:
            raise KeyError(caller_id)
        open_request = session.exec(
            select(ServiceRequest.id).where(ServiceRequest.caller_id == caller_id, col(ServiceRequest.status).in_(OPEN))
        ).first()
        if open_request is not None:
            raise StillServing(caller_id)
        calls = list(session.exec(select(CallLog.call_sid).where(CallLog.from_number == caller.phone)).all())
        if not phones.is_pseudonym(caller.phone):
            erase_number(session, caller.phone, key, counts)
        else:  # erased before: what they said, and staff wrote about them, since then is blanked all the same
            result = session.execute(
                sa.update(ServiceRequest)
                .where(col(ServiceRequest.caller_id) == caller_id, _has_free_text())
                .values(dict.fromkeys(FREE_TEXT))
            )
            counts.requests_blanked += int(result.rowcount)  # type: ignore[attr-defined]
            blank_notes_about(session, [caller.phone], counts)
        theirs = select(Recording).where(
            col(Recording.erased_at).is_(None),
            sa.or_(
                col(Recording.request_id).in_(select(ServiceRequest.id).where(ServiceRequest.caller_id == caller_id)),
                sa.and_(col(Recording.kind) == RecordingKind.AGENT_CALL, col(Recording.call_sid).in_(calls)),
            ),
        )
        counts.recordings_deleted = erase_recordings(session, settings, list(session.exec(theirs).all()), now)
        counts.redis_entries_removed = erase_from_redis(connection, counts.numbers_erased)
    return counts
