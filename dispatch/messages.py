"""SMS as the helpline keeps them: a message that came in, recorded once however often Twilio
delivers it; Twilio's delivery reports for ours, applied in Twilio's order; and when one of ours
that Twilio refused is tried again, or given up on. Called by the SMS webhooks and the jobs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.settings import Settings
from dispatch import sms_text
from storage.db import ArrayInsert, session_scope
from storage.models import (
    Direction,
    Offer,
    OfferStatus,
    RequestStatus,
    ServiceRequest,
    SmsDelivery,
    SmsHandling,
    SmsLog,
    utcnow,
)

log = logging.getLogger(__name__)
_INSERT_OUTBOUND = sa.insert(SmsLog).returning(col(SmsLog.id))
# The columns of `claimed_row`, its rows inserted at once (`record_claimed`).
_CLAIMED = (
    "direction",
    "to_number",
    "body",
    "template",
    "status",
    "request_id",
    "worker_id",
    "created_at",
    "updated_at",
    "attempts",
    "next_attempt_at",
)
_INSERT_CLAIMED = ArrayInsert.of(SmsLog, _CLAIMED)

# Twilio's order of message states; a report arriving late never moves a message backwards.
ORDER = {
    SmsDelivery.PENDING: 0,
    SmsDelivery.QUEUED: 1,
    SmsDelivery.SENDING: 2,
    SmsDelivery.SENT: 3,
    SmsDelivery.FAILED: 4,
    SmsDelivery.UNDELIVERED: 4,
    SmsDelivery.DELIVERED: 5,
}
RANKS: dict[str, int] = {status.value: rank for status, rank in ORDER.items()}
UNDELIVERED = frozenset({SmsDelivery.FAILED, SmsDelivery.UNDELIVERED})
# A message Twilio refused is tried again from the database (RQ's retries are lost with an empty
# Redis) after these pauses, then given up on (`not_sent`, for an agent to see); never after this long.
RETRY_PAUSES = (timedelta(seconds=10), timedelta(seconds=30), timedelta(seconds=90))
MAX_ATTEMPTS = 1 + len(RETRY_PAUSES)
GIVE_UP_AFTER = timedelta(hours=1)
OFFERS = frozenset({"offer", "offer_rework"})  # the texts that carry an offer (a rework's names the job redone)
OWN_RETRIES = OFFERS  # the offer's job tries again (a new message each time), then moves on
SENDABLE = (SmsDelivery.PENDING, SmsDelivery.SEND_FAILED)
# What these say holds only while the job is in its worker's hands (the codes, the worker's news).
WHILE_ASSIGNED = frozenset(
    {"assigned_citizen", "assigned_worker", "on_the_way_citizen", "start_code_citizen", "completion_code_citizen"}
)


def record_outbound(
    db: sa.Connection | Session,
    settings: Settings,
    to: str,
    template: str,
    language: str,
    values: Mapping[str, str],
    *,
    request_id: int | None = None,
    worker_id: int | None = None,
) -> int:
    """An SMS from a template, fitted to two segments, recorded as pending in the caller's
    transaction (sent after its commit; a lost send, the sweeper sends); its id. One INSERT …
    RETURNING, no table model: a booking and a first-time caller's language turn record one while the
    caller waits."""
    row = outbound_row(settings, to, template, language, values, request_id=request_id, worker_id=worker_id)
    sms_id = db.execute(_INSERT_OUTBOUND, row).scalar_one()
    assert sms_id is not None
    return int(sms_id)


@dataclass(frozen=True)
class Outgoing:
    """An SMS recorded with its first try taken: what the job that recorded it sends after its commit."""

    id: int
    to: str
    body: str
    template: str


def claimed_row(
    settings: Settings,
    to: str,
    template: str,
    language: str,
    values: Mapping[str, str],
    now: datetime,
    *,
    request_id: int | None = None,
    worker_id: int | None = None,
) -> dict[str, Any]:
    """`outbound_row` with its first try claimed, for `record_claimed`: claimed in the transaction that
    records it (as `claim_attempt` would claim it, one transaction later), nobody else sends it before
    that try's time to retry; if the job that recorded it dies before sending, the sweeper sends it from
    this row then."""
    return {
        **outbound_row(settings, to, template, language, values, request_id=request_id, worker_id=worker_id),
        "direction": Direction.OUTBOUND,
        "created_at": utcnow(),
        "updated_at": now,
        "attempts": 1,
        "next_attempt_at": now + RETRY_PAUSES[0],
    }


def record_claimed(session: Session, rows: Sequence[Mapping[str, Any]]) -> list[Outgoing]:
    """Messages of `claimed_row` inserted in the session's transaction, in one statement, and what each
    one's sender needs (`Outgoing`), in their order. No table model is built and none joins the session.
    On PostgreSQL the statement is one text however many messages it inserts (`storage.db.ArrayInsert`):
    a dispatch batch's, as one INSERT of many VALUES, was a new text each time, parsed anew by psycopg."""
    ids = _INSERT_CLAIMED.ids(session.connection(), rows)
    return [  # one id a row, or zip raises
        Outgoing(sms_id, row["to_number"], row["body"], row["template"] or "")
        for sms_id, row in zip(ids, rows, strict=True)
    ]


def outgoing(sms: SmsLog) -> Outgoing:
    """What a recorded, flushed message's sender needs of it (read before its commit)."""
    assert sms.id is not None
    assert sms.to_number is not None
    return Outgoing(sms.id, sms.to_number, sms.body, sms.template or "")


def outbound_row(
    settings: Settings,
    to: str,
    template: str,
    language: str,
    values: Mapping[str, str],
    *,
    request_id: int | None,
    worker_id: int | None,
) -> dict[str, Any]:
    """An outbound SMS's columns, pending."""
    return {
        "to_number": to,
        "body": sms_text.compose(settings, template, language, values),
        "template": template,
        "status": SmsDelivery.PENDING,
        "request_id": request_id,
        "worker_id": worker_id,
    }


def record_inbound(engine: sa.Engine, message_sid: str, sender: str, body: str) -> int | None:
    """The new message's id, or None when Twilio delivered this one before."""
    try:
        with session_scope(engine) as session:
            sms = SmsLog(
                message_sid=message_sid,
                direction=Direction.INBOUND,
                from_number=sender,
                body=body,
                status=SmsHandling.RECEIVED,
            )
            session.add(sms)
            session.flush()
            return sms.id
    except sa.exc.IntegrityError:
        return None


def record_delivery(
    engine: sa.Engine, message_sid: str, status: str, error_code: str, now: datetime, *, sms_id: int | None = None
) -> int | None:
    """Keep a delivery report (`status` one of ORDER); return the open offer an undelivered SMS
    carried (it goes unanswered).

    `sms_id` is our row's id, carried in the status callback's URL: a message the platform took whose
    sid we never wrote (the sending worker died, or the database was cut, between the platform's answer
    and our write) is matched by it, and gets its sid now, so it is not sent a second time."""
    reported = SmsDelivery(status)
    with session_scope(engine) as session:
        sms = session.exec(select(SmsLog).where(SmsLog.message_sid == message_sid)).first()
        if sms is None and sms_id is not None:
            sms = _unrecorded(session, sms_id, message_sid)
        if sms is None or sms.direction is not Direction.OUTBOUND or ORDER[reported] < _rank(sms.status):
            return None
        sms.status, sms.updated_at = reported, now
        sms.error_code = error_code or sms.error_code
        session.add(sms)
        offer = _offer_texted(session, sms) if reported in UNDELIVERED else None
        return offer.id if offer else None


def _unrecorded(session: Session, sms_id: int, message_sid: str) -> SmsLog | None:
    """Our outbound row `sms_id`, if it is waiting for the sid the platform just reported: it gets it
    (and is no longer due to be tried again). A row with another sid was sent twice: that is logged."""
    sms = session.get(SmsLog, sms_id, with_for_update=True)
    if sms is None or sms.direction is not Direction.OUTBOUND or not sms.attempts:
        return None
    if sms.message_sid is not None:
        log.warning("SMS %s was sent twice: %s and %s reached the platform", sms_id, sms.message_sid, message_sid)
        return None
    log.warning("SMS %s was sent, but its sid was never written; the platform's report gives it", sms_id)
    sms.message_sid, sms.next_attempt_at = message_sid, None
    return sms


def _rank(status: str | None) -> int:
    """Where a message's status stands in Twilio's order (ours, send_failed, before any of Twilio's)."""
    return RANKS.get(status or SmsDelivery.PENDING, 0)


def _offer_texted(session: Session, sms: SmsLog) -> Offer | None:
    """The still-open offer an SMS carried, if it was one."""
    if sms.template not in OFFERS or sms.worker_id is None or sms.request_id is None:
        return None
    query = select(Offer).where(
        Offer.request_id == sms.request_id, Offer.worker_id == sms.worker_id, Offer.status == OfferStatus.PENDING
    )
    return session.exec(query).first()


def claim_attempt(session: Session, sms: SmsLog, now: datetime) -> bool:
    """Take the next try at sending `sms`, if nobody took it meanwhile (a compare-and-set on its count
    of tries: a retry from RQ and one from the sweeper never send it twice). The try's time to retry
    is set now: a worker dying mid-send leaves it for the sweeper."""
    after = RETRY_PAUSES[min(sms.attempts, len(RETRY_PAUSES) - 1)]
    claimed = session.execute(
        sa.update(SmsLog)
        .where(
            col(SmsLog.id) == sms.id,
            col(SmsLog.attempts) == sms.attempts,
            col(SmsLog.message_sid).is_(None),
            col(SmsLog.status).in_(SENDABLE),
        )
        .values(attempts=sms.attempts + 1, next_attempt_at=now + after, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(claimed)


def failed_attempt(session: Session, sms_id: int, *, retryable: bool, error_code: str | None, now: datetime) -> str:
    """Record a try Twilio refused: `send_failed`, to be tried again when due, or `not_sent` for good
    (its tries or its time are used up, or trying again cannot help). Returns the status."""
    sms = session.get(SmsLog, sms_id)
    assert sms is not None
    final = not retryable or sms.attempts >= MAX_ATTEMPTS or now - sms.created_at >= GIVE_UP_AFTER
    own = sms.template in OWN_RETRIES
    status = SmsDelivery.NOT_SENT if final and not own else SmsDelivery.SEND_FAILED
    sms.status, sms.error_code, sms.updated_at = status, error_code, now
    sms.next_attempt_at = None if final or own else sms.next_attempt_at
    session.add(sms)
    session.commit()
    return status


def moot(session: Session, sms: SmsLog) -> bool:
    """Whether what the message says no longer holds: an offer closed, a job no longer that worker's,
    a rating asked of a request no longer waiting for one. Such a message is not tried again."""
    request = session.get(ServiceRequest, sms.request_id) if sms.request_id is not None else None
    if request is None:
        return False
    if sms.template in OFFERS:
        return _offer_texted(session, sms) is None
    if sms.template in WHILE_ASSIGNED:
        return request.status is not RequestStatus.ASSIGNED
    if sms.template == "feedback":
        return request.status is not RequestStatus.COMPLETED
    return False


def due_again(session: Session, before: datetime) -> list[int]:
    """Messages Twilio refused whose next try was due before `before` and did not happen (RQ's retry
    was lost with Redis, or its worker died)."""
    query = select(SmsLog.id).where(SmsLog.status == SmsDelivery.SEND_FAILED, col(SmsLog.next_attempt_at) < before)
    return [int(sms_id or 0) for sms_id in session.exec(query).all()]
