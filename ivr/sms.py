"""SMS webhooks: messages from workers and citizens, and the delivery status of ours."""

from __future__ import annotations

import logging
import re

import redis
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from sqlmodel import Session, select
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import HTTPException

from dispatch import jobs
from dispatch.queues import QueueName, queue
from ivr.signature import twilio_signed
from storage import phones
from storage.db import session_scope
from storage.models import Direction, Offer, OfferStatus, SmsLog, utcnow
from storage.text import storable

bp = Blueprint("sms", __name__, url_prefix="/twilio/sms")
log = logging.getLogger(__name__)
MAX_BODY = 1600
# Twilio's order of message states; a callback arriving late never moves a message backwards.
ORDER = {"pending": 0, "queued": 1, "sending": 2, "sent": 3, "failed": 4, "undelivered": 4, "delivered": 5}
UNDELIVERED = frozenset({"failed", "undelivered"})
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")


@bp.post("")
@twilio_signed
def incoming() -> Response:
    """A message comes in: record it once (Twilio may deliver it twice), then let a job act on it.

    Recorded first, so nothing a worker or citizen sends is lost: if the job cannot be queued now,
    the sweeper finds the message still `received`.
    """
    runtime = current_app.extensions["sewamitra"]
    sender = phones.to_e164(request.form.get("From", "")[:40])
    sid = request.form.get("MessageSid", "")
    body = storable(request.form.get("Body", ""), MAX_BODY)
    if sender is None or not MESSAGE_SID.match(sid):
        return _empty()
    sms_id = _record(runtime.engine, sid, sender, body)
    if sms_id is not None:
        try:
            queue(runtime.redis, QueueName.DISPATCH).enqueue(jobs.handle_sms, sms_id, job_id=f"inbound-{sms_id}")
        except redis.RedisError:
            log.exception("inbound SMS %s recorded but not queued; the sweeper will pick it up", sms_id)
    return _empty()


def _record(engine: sa.Engine, sid: str, sender: str, body: str) -> int | None:
    """The new message's id, or None when Twilio delivered this one before."""
    try:
        with session_scope(engine) as session:
            sms = SmsLog(message_sid=sid, direction=Direction.INBOUND, from_number=sender, body=body,
                         status=jobs.RECEIVED)  # fmt: skip
            session.add(sms)
            session.flush()
            return sms.id
    except sa.exc.IntegrityError:
        return None


def _empty() -> Response:
    return Response(str(MessagingResponse()), mimetype="text/xml")


@bp.errorhandler(Exception)
def internal_error(error: Exception) -> Response | HTTPException:
    """Twilio gets a valid answer whatever broke; the message is in the log and, once recorded, in SmsLog."""
    if isinstance(error, HTTPException):
        return error
    log.exception("SMS webhook failed", exc_info=error)
    return _empty()


@bp.post("/status")
@twilio_signed
def status() -> Response:
    """Keep each message's delivery status; an offer that could not be delivered goes unanswered."""
    runtime = current_app.extensions["sewamitra"]
    sid = request.form.get("MessageSid", "")
    new = request.form.get("MessageStatus", "")
    if not MESSAGE_SID.match(sid) or new not in ORDER:
        return Response(status=204)
    with session_scope(runtime.engine) as session:
        sms = session.exec(select(SmsLog).where(SmsLog.message_sid == sid)).first()
        if sms is None or ORDER[new] < ORDER.get(sms.status or "pending", 0):
            return Response(status=204)
        sms.status, sms.updated_at = new, utcnow()
        sms.error_code = storable(request.form.get("ErrorCode", ""), 10) or sms.error_code
        session.add(sms)
        offer = _offer_texted(session, sms) if new in UNDELIVERED else None
    if offer is not None:
        queue(runtime.redis, QueueName.DISPATCH).enqueue(
            jobs.expire_offer, offer.id, "the SMS could not be delivered", True, job_id=f"undelivered-{offer.id}"
        )
    return Response(status=204)


def _offer_texted(session: Session, sms: SmsLog) -> Offer | None:
    """The still-open offer an SMS carried, if it was one."""
    if sms.template != "offer" or sms.worker_id is None or sms.request_id is None:
        return None
    query = select(Offer).where(
        Offer.request_id == sms.request_id, Offer.worker_id == sms.worker_id, Offer.status == OfferStatus.PENDING
    )
    return session.exec(query).first()
