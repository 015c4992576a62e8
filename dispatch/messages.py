"""SMS as the helpline keeps them: a message that came in, recorded once however often Twilio
delivers it, and Twilio's delivery reports for ours, applied in Twilio's order. Called by the SMS
webhooks, or by a job when the database could not be reached while Twilio was waiting."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.db import session_scope
from storage.models import Direction, Offer, OfferStatus, SmsLog, utcnow

RECEIVED = "received"  # recorded, not yet handled
# Twilio's order of message states; a report arriving late never moves a message backwards.
ORDER = {"pending": 0, "queued": 1, "sending": 2, "sent": 3, "failed": 4, "undelivered": 4, "delivered": 5}
UNDELIVERED = frozenset({"failed", "undelivered"})


def record_inbound(engine: sa.Engine, message_sid: str, sender: str, body: str) -> int | None:
    """The new message's id, or None when Twilio delivered this one before."""
    try:
        with session_scope(engine) as session:
            sms = SmsLog(message_sid=message_sid, direction=Direction.INBOUND, from_number=sender, body=body,
                         status=RECEIVED)  # fmt: skip
            session.add(sms)
            session.flush()
            return sms.id
    except sa.exc.IntegrityError:
        return None


def record_delivery(engine: sa.Engine, message_sid: str, status: str, error_code: str) -> int | None:
    """Keep a delivery report; return the open offer an undelivered SMS carried (it goes unanswered)."""
    with session_scope(engine) as session:
        sms = session.exec(select(SmsLog).where(SmsLog.message_sid == message_sid)).first()
        if sms is None or ORDER[status] < ORDER.get(sms.status or "pending", 0):
            return None
        sms.status, sms.updated_at = status, utcnow()
        sms.error_code = error_code or sms.error_code
        session.add(sms)
        offer = _offer_texted(session, sms) if status in UNDELIVERED else None
        return offer.id if offer else None


def _offer_texted(session: Session, sms: SmsLog) -> Offer | None:
    """The still-open offer an SMS carried, if it was one."""
    if sms.template != "offer" or sms.worker_id is None or sms.request_id is None:
        return None
    query = select(Offer).where(
        Offer.request_id == sms.request_id, Offer.worker_id == sms.worker_id, Offer.status == OfferStatus.PENDING
    )
    return session.exec(query).first()
