"""SMS as the helpline keeps them: a message that came in, recorded once however often Twilio
delivers it, and Twilio's delivery reports for ours, applied in Twilio's order. Called by the SMS
webhooks, or by a job when the database could not be reached while Twilio was waiting."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.db import session_scope
from storage.models import Direction, Offer, OfferStatus, SmsDelivery, SmsHandling, SmsLog, utcnow

# Twilio's order of message states; a report arriving late never moves a message backwards.
ORDER = {SmsDelivery.PENDING: 0, SmsDelivery.QUEUED: 1, SmsDelivery.SENDING: 2, SmsDelivery.SENT: 3,
         SmsDelivery.FAILED: 4, SmsDelivery.UNDELIVERED: 4, SmsDelivery.DELIVERED: 5}  # fmt: skip
RANKS: dict[str, int] = {status.value: rank for status, rank in ORDER.items()}
UNDELIVERED = frozenset({SmsDelivery.FAILED, SmsDelivery.UNDELIVERED})


def record_inbound(engine: sa.Engine, message_sid: str, sender: str, body: str) -> int | None:
    """The new message's id, or None when Twilio delivered this one before."""
    try:
        with session_scope(engine) as session:
            sms = SmsLog(message_sid=message_sid, direction=Direction.INBOUND, from_number=sender, body=body,
                         status=SmsHandling.RECEIVED)  # fmt: skip
            session.add(sms)
            session.flush()
            return sms.id
    except sa.exc.IntegrityError:
        return None


def record_delivery(engine: sa.Engine, message_sid: str, status: str, error_code: str) -> int | None:
    """Keep a delivery report (`status` one of ORDER); return the open offer an undelivered SMS
    carried (it goes unanswered)."""
    reported = SmsDelivery(status)
    with session_scope(engine) as session:
        sms = session.exec(select(SmsLog).where(SmsLog.message_sid == message_sid)).first()
        if sms is None or sms.direction is not Direction.OUTBOUND or ORDER[reported] < _rank(sms.status):
            return None
        sms.status, sms.updated_at = reported, utcnow()
        sms.error_code = error_code or sms.error_code
        session.add(sms)
        offer = _offer_texted(session, sms) if reported in UNDELIVERED else None
        return offer.id if offer else None


def _rank(status: str | None) -> int:
    """Where a message's status stands in Twilio's order (ours, send_failed, before any of Twilio's)."""
    return RANKS.get(status or SmsDelivery.PENDING, 0)


def _offer_texted(session: Session, sms: SmsLog) -> Offer | None:
    """The still-open offer an SMS carried, if it was one."""
    if sms.template != "offer" or sms.worker_id is None or sms.request_id is None:
        return None
    query = select(Offer).where(
        Offer.request_id == sms.request_id, Offer.worker_id == sms.worker_id, Offer.status == OfferStatus.PENDING
    )
    return session.exec(query).first()
